"""Run infrastructure: parameters, the run context, the step frame, evidence gathering, salvage.

Steps (``runbook_lib.steps``) are only their work; everything every step needs lives here.
"""

"""The rollback run's parameters (``params``): to be replaced by ``core.settings``."""

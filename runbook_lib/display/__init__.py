"""What a person sees while a run goes on: the summary banner, progress, plots, the recorder."""

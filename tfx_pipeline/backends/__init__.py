"""One thin module per orchestrator: each turns ``create_pipeline``'s result into a run."""

"""Pictures and tables made from runs: training dynamics, confusion matrices, sweep comparisons."""

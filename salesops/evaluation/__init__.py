"""Forecast evaluation: a demand simulator with a known truth, real weekly series, the standard models
and a rolling-origin backtest."""

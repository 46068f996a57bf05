"""Thin Lambda entry points: parse the event, call logic, shape the response."""

"""Wire format and settings. Imports nothing from the project."""

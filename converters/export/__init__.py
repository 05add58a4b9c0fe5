"""Exporters: from the packed IR to other formats."""

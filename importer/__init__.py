"""Bulk-create Oracle Eloqua External Activities from spreadsheets."""

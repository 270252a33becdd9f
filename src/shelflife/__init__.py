"""shelflife: keeps marketplace buyers' personal data exactly as long as allowed."""

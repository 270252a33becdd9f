"""Invoice and credit PDFs (fpdf2)."""

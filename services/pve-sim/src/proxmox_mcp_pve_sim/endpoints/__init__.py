"""API endpoint modules; `routes.py` lists what each of them answers."""

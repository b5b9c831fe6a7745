"""Gateway domain: pure rules about credentials and roles."""

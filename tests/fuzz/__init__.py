"""The fuzz test of issue 7: hostile and malformed requests against a real adapter."""

"""The master process (FastAPI, auth, voices, streaming endpoints): arrives with the service.

It never imports torch or the engine, so it starts in a second and stays responsive while the
workers load models.
"""

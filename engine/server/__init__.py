"""`engine serve`: one warm KnowledgeBase behind a FastAPI app (create_app in engine/server/app.py)."""

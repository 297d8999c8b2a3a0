"""The vector spaces: one FAISS index each; FAISS ids are the row ids of the named table.

Apart from the tables (engine/store/schema.py, which needs SQLAlchemy) so that code reading the
store with sqlite3 alone (`engine status`, engine/store/health.py) can name them.
"""

TEXT_SPACE = "text"  # chunks, in the text model's space
CLIP_IMAGE_SPACE = "clip_image"  # images, in CLIP's space
CLIP_TEXT_SPACE = "clip_text"  # chunks, in CLIP's space (mean of their sentences)
SPACE_TABLE = {TEXT_SPACE: "chunks", CLIP_IMAGE_SPACE: "images", CLIP_TEXT_SPACE: "chunks"}

"""The API's stored things by id: image files (``/v1/images/{id}``) and documents (``/v1/documents/{id}``)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from engine.server.image_files import ThumbnailCache, image_response
from engine.server.warm import WarmKnowledgeBase

IMAGE_PATH = "/v1/images/{image_id}"
MAX_ID = 2**63 - 1  # SQLite's largest integer: a larger id is a 400, not an overflow inside the query


def _warm(request: Request) -> WarmKnowledgeBase:
    return request.app.state.warm


def files_router(thumbnails: ThumbnailCache | None = None) -> APIRouter:
    """The routes, with their own thumbnail cache (one per app, so no state is shared between apps)."""
    router = APIRouter()
    thumbnails = thumbnails or ThumbnailCache()

    @router.get(IMAGE_PATH, response_class=Response, responses={200: {"content": {"image/*": {}}}})
    def image(
        request: Request,
        image_id: int = Path(..., ge=1, le=MAX_ID, description="An image id, as in an answer's images[].image_id."),
        size: Literal["full", "thumb"] = Query("full", description="thumb: a JPEG of at most 320 px."),
    ) -> Response:
        """The stored image file (its own content type), or a thumbnail; cached for a year by content hash."""
        with _warm(request).use() as kb:
            stored = kb.image(image_id)
        if stored is None:
            raise HTTPException(404, f"no image {image_id} is stored")
        if not stored.path.is_file():
            raise HTTPException(404, f"image {image_id}'s file is missing from the store; run `engine check`")
        return image_response(stored, size == "thumb", request.headers.get("if-none-match"), thumbnails)

    @router.get("/v1/documents/{document_id}")
    def document(
        request: Request,
        document_id: int = Path(..., ge=1, le=MAX_ID, description="A document id, as in an answer's sources[].document_id."),
    ) -> JSONResponse:
        """A stored document: title, URL, author, date, language, topics, its passages in order, its images."""
        with _warm(request).use() as kb:
            found = kb.document(document_id)
        if found is None:
            raise HTTPException(404, f"no document {document_id} is stored")
        body = found.to_dict()
        for shown in body["images"]:
            shown["url"] = IMAGE_PATH.format(image_id=shown["image_id"])
        return JSONResponse(body)

    return router

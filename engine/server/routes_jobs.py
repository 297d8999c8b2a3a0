"""The job routes: start an index job (JSON, or uploaded files), follow it, cancel it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from fastapi import APIRouter, Depends, Request
from fastapi import Path as PathParameter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from engine.errors import ConfigError
from engine.server.jobs import JobQueue, JobSpec
from engine.server.security import require_writer
from engine.server.uploads import Upload, UploadRejected, limited, store_uploads
from indexer.url_lists import is_url

router = APIRouter()
JOB_ID = PathParameter(pattern=r"^[0-9a-f]{12}$", description="A job's id, as POST /v1/index-jobs returned it.")
JSON_FIELDS = ("topics", "crawl", "paths")
FORM_FIELDS = ("topics", "files")
MAX_FILES = 100
JOB_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "topics": {"type": "array", "items": {"type": "string"}},
                        "crawl": {"type": "boolean", "description": "Crawl the web for the topics."},
                        "paths": {"type": "array", "items": {"type": "string"}, "description": "Server-side files or folders, or http(s) URLs of pages, feeds or sitemaps."},
                    },
                },
                "examples": {
                    "crawl": {"value": {"topics": ["coffee roasting"], "crawl": True}},
                    "paths": {"value": {"topics": ["coffee"], "paths": ["/srv/saved_pages"]}},
                },
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "topics": {"type": "string", "description": "One topic per line."},
                        "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
                    },
                },
            },
        },
    }
}


def _jobs(request: Request) -> JobQueue:
    return request.app.state.jobs


def _accepted(job_dict: dict, job_id: str) -> JSONResponse:
    return JSONResponse(job_dict, status_code=202, headers={"Location": f"/v1/jobs/{job_id}"})


@router.post("/v1/index-jobs", status_code=202, dependencies=[Depends(require_writer)], openapi_extra=JOB_BODY)
async def create_index_job(request: Request) -> JSONResponse:
    """Queue an index job: a crawl of topics, server-side paths (JSON), or uploaded pages and
    WARC/ARC archives (multipart: ``topics``, one per line, and ``files``). 202 with the job."""
    jobs = _jobs(request)
    # Jobs are taken while the reader still loads: they need no reader, only the models it
    # loads, and the worker waits for those rather than loading a second copy.
    holder = jobs.other_writer()
    if holder is not None:
        raise HTTPException(409, holder)
    body = limited(request, jobs.config.serve.max_upload_bytes)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        spec = await _upload_spec(body, jobs.config.store.path)
    elif kind in ("application/json", ""):
        try:
            parsed = await body.json()
        except ValueError as exc:
            raise ConfigError(f"the request body is not JSON: {exc}") from None
        spec = spec_from_json(parsed)
    else:
        raise HTTPException(415, f"send the job as application/json or multipart/form-data, not {kind}")
    job = jobs.submit(spec)
    return _accepted(job.to_dict(), job.id)


@router.get("/v1/jobs")
async def list_jobs(request: Request) -> dict[str, list]:
    """Every job this server remembers (queued, running, and the last finished ones), newest first."""
    return {"jobs": [job.to_dict() for job in _jobs(request).jobs()]}


@router.get("/v1/jobs/{job_id}")
async def get_job(request: Request, job_id: str = JOB_ID) -> dict[str, Any]:
    """A job's state, progress ({done, total, current}), and once finished its report or error."""
    job = _jobs(request).get(job_id)
    if job is None:
        raise _unknown(job_id)
    return job.to_dict()


@router.delete("/v1/jobs/{job_id}", status_code=202, dependencies=[Depends(require_writer)])
async def cancel_job(request: Request, job_id: str = JOB_ID) -> JSONResponse:
    """Cancel a queued job, or stop a running one after the batch being written (202; 409 once finished)."""
    try:
        job = _jobs(request).cancel(job_id)
    except KeyError:
        raise _unknown(job_id) from None
    except ValueError as exc:
        raise HTTPException(409, str(exc)) from None
    return _accepted(job.to_dict(), job.id)


def _unknown(job_id: str) -> HTTPException:
    return HTTPException(404, f"no job {job_id} here (a server remembers its last finished jobs until it restarts)")


def spec_from_json(body: Any) -> JobSpec:
    """The JobSpec of a JSON request; a bad one is a ConfigError naming the field and the value."""
    if not isinstance(body, dict):
        raise ConfigError('the request body must be a JSON object such as {"topics": ["coffee"], "crawl": true}')
    unknown = sorted(set(body) - set(JSON_FIELDS))
    if unknown:
        raise ConfigError(f"unknown field {', '.join(map(repr, unknown))}: a job takes {', '.join(JSON_FIELDS)}")
    topics = _strings(body, "topics")
    paths = _strings(body, "paths")
    crawl = body.get("crawl", False)
    if not isinstance(crawl, bool):
        raise ConfigError(f"crawl must be true or false, not {crawl!r}")
    if crawl and paths:
        raise ConfigError("crawl and paths: a job crawls its topics or indexes paths, not both")
    if not crawl and not paths:
        raise ConfigError('paths: give the server-side files or folders to index, or "crawl": true to crawl the topics')
    for n, path in enumerate(paths):
        if not is_url(path) and not Path(path).exists():
            raise ConfigError(f"paths[{n}]: no such file or folder on the server: {path!r}")
    # A URL stays a string: the crawler's fetcher and its SSRF guard decide what it may reach.
    inputs = tuple(p.strip() if is_url(p) else Path(p).resolve() for p in paths)
    return JobSpec(clean_topics(topics), inputs, crawl, origin="api")


def _strings(body: dict, name: str) -> list[str]:
    value = body.get(name, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{name} must be a list of strings, not {value!r}")
    return value


def clean_topics(topics: Iterable[str]) -> tuple[str, ...]:
    """Topics with their whitespace collapsed, blank ones dropped, each once (as in a topics file)."""
    return tuple(dict.fromkeys(t for t in (" ".join(topic.split()) for topic in topics) if t))


async def _upload_spec(request: Request, store_root: Path) -> JobSpec:
    form = await request.form(max_files=MAX_FILES)
    try:
        unknown = sorted(set(form.keys()) - set(FORM_FIELDS))
        if unknown:
            raise ConfigError(f"unknown form field {', '.join(map(repr, unknown))}: an upload takes {', '.join(FORM_FIELDS)}")
        texts = [value for value in form.getlist("topics") if isinstance(value, str)]
        topics = clean_topics(line for text in texts for line in text.splitlines())
        files = form.getlist("files")
        if not all(isinstance(f, UploadFile) for f in files):
            raise ConfigError("files: each 'files' field must be a file, not text")
        uploads = [Upload(f.filename or "", f.file) for f in files]
        try:
            paths = await run_in_threadpool(store_uploads, store_root, uploads)
        except UploadRejected as exc:
            raise ConfigError(f"files: {exc}") from None
    finally:
        await form.close()
    return JobSpec(topics, tuple(paths), origin="upload")

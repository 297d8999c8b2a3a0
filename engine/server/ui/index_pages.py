"""The index page (start a crawl, upload pages or archives) and the job pages, over the API's JobQueue.

Forms post here rather than to /v1/index-jobs so that a browser without JavaScript can send them
(a form cannot send a bearer header: the token travels as a form field) and land on the job's page.
"""

from __future__ import annotations

import dataclasses
import re

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException

from engine.errors import ConfigError
from engine.server.jobs import JobQueue, JobSpec
from engine.server.routes_jobs import MAX_FILES, clean_topics
from engine.server.security import write_refusal
from engine.server.ui.render import page
from engine.server.uploads import UPLOAD_SUFFIXES, Upload, UploadRejected, limited, store_uploads

router = APIRouter(include_in_schema=False)
JOB_ID = re.compile(r"^[0-9a-f]{12}$")
REFRESH_S = 2  # a queued or running job's page reloads itself this often
RECENT_JOBS = 20


def _jobs(request: Request) -> JobQueue:
    return request.app.state.jobs


@router.get("/index")
def index_page(request: Request, topics: str = "") -> HTMLResponse:
    """The forms, with ``topics`` filled in (the answer page links here for a question nothing answered)."""
    return _index_page(request, topics=topics)


@router.post("/index")
async def start_job(request: Request) -> Response:
    """Start a crawl of the form's topics, or index its uploaded files; 303 to the job's page."""
    access = request.app.state.access
    jobs = _jobs(request)
    # Another site's form is refused before its body is read; the token, a form field, is checked after.
    refusal = write_refusal(dataclasses.replace(access, token=None), request.headers)
    if refusal is not None:
        return _index_page(request, refusal[0], error=refusal[1])
    try:
        form = await limited(request, jobs.config.serve.max_upload_bytes).form(max_files=MAX_FILES)
    except HTTPException as exc:  # 413: over the size limit
        return _index_page(request, exc.status_code, error=str(exc.detail))
    try:
        topics = _text(form, "topics")
        refusal = write_refusal(access, request.headers, _text(form, "token"))
        if refusal is not None:
            return _index_page(request, refusal[0], error=refusal[1], topics=topics)
        holder = jobs.other_writer()
        if holder is not None:
            return _index_page(request, 409, error=holder, topics=topics)
        try:
            spec = await _spec(form, jobs)
        except (ConfigError, UploadRejected) as exc:
            return _index_page(request, 400, error=str(exc), topics=topics)
        job = jobs.submit(spec)
    finally:
        await form.close()
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


@router.get("/jobs/{job_id}")
def job_page(request: Request, job_id: str) -> HTMLResponse:
    """A job's progress, reloading itself until it ends, then its outcome: the JSON of /v1/jobs/{id}."""
    return _job_page(request, job_id)


@router.post("/jobs/{job_id}/cancel")
async def cancel_job(request: Request, job_id: str) -> Response:
    """Cancel a queued job, or stop a running one after its batch; 303 back to its page."""
    form = await request.form(max_files=0)
    refusal = write_refusal(request.app.state.access, request.headers, _text(form, "token"))
    if refusal is not None:
        return _job_page(request, job_id, refusal[0], error=refusal[1])
    try:
        _jobs(request).cancel(job_id)
    except KeyError:
        return _job_page(request, job_id)  # says there is no such job
    except ValueError as exc:  # it has already finished
        return _job_page(request, job_id, 409, error=str(exc))
    return RedirectResponse(f"/jobs/{job_id}", status_code=303)


async def _spec(form: FormData, jobs: JobQueue) -> JobSpec:
    topics = clean_topics(_text(form, "topics").splitlines())
    if _text(form, "kind") == "crawl":
        return JobSpec(topics, crawl=True, origin="ui")
    files = [f for f in form.getlist("files") if isinstance(f, UploadFile) and f.filename]
    uploads = [Upload(f.filename, f.file) for f in files]
    paths = await run_in_threadpool(store_uploads, jobs.config.store.path, uploads)
    return JobSpec(topics, tuple(paths), origin="upload")


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _index_page(request: Request, status: int = 200, error: str | None = None, topics: str = "") -> HTMLResponse:
    jobs = _jobs(request)
    return page(
        "index.html",
        status,
        error=error,
        topics=topics,
        token_needed=request.app.state.access.token is not None,
        max_upload_bytes=jobs.config.serve.max_upload_bytes,
        accept=",".join(UPLOAD_SUFFIXES),
        jobs=[job.to_dict() for job in jobs.jobs()[:RECENT_JOBS]],
    )


def _job_page(request: Request, job_id: str, status: int = 200, error: str | None = None) -> HTMLResponse:
    job = _jobs(request).get(job_id) if JOB_ID.match(job_id) else None
    if job is None:
        return page("job.html", 404, error=f"no job {job_id} here (a server remembers its last finished jobs until it restarts)", job=None)
    return page(
        "job.html",
        status,
        error=error,
        job=job.to_dict(),
        refresh=None if job.finished else REFRESH_S,
        token_needed=request.app.state.access.token is not None,
    )

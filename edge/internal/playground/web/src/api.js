// The CodeExec HTTP API as the playground uses it: same origin, the session cookie as
// credential, errors in the API's shape turned into ApiError and then into words.

export class ApiError extends Error {
  constructor(status, code, message, retryAfter, jobId) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
    this.jobId = jobId;
  }
}

// call sends one request; body, when given, goes as JSON. It answers the decoded JSON
// (null for 204) or throws an ApiError.
export async function call(method, path, body) {
  const init = { method, headers: {}, credentials: 'same-origin' };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, 'unreachable', String(e && e.message ? e.message : e), 0, '');
  }
  const text = await res.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    const err = (data && data.error) || {};
    const retry = parseInt(res.headers.get('Retry-After') || '', 10);
    throw new ApiError(res.status, err.code || `http_${res.status}`, err.message || res.statusText,
      Number.isFinite(retry) ? retry : 0, (data && data.jobId) || '');
  }
  return data;
}

function seconds(n) {
  return n === 1 ? '1 second' : `${n} seconds`;
}

// describe puts an API error in words a user can act on.
export function describe(err) {
  if (!(err instanceof ApiError)) {
    return `Something went wrong in the page: ${err && err.message ? err.message : err}`;
  }
  const wait = err.retryAfter > 0 ? `wait ${seconds(err.retryAfter)}` : 'wait a moment';
  const detail = err.message ? ` (${err.message})` : '';
  switch (err.status) {
    case 0:
      return `The CodeExec server cannot be reached; is it running?${detail}`;
    case 400:
      return `The request was refused: ${err.message}`;
    case 401:
      if (err.code === 'invalid_credentials') return 'Wrong email or password.';
      if (err.code === 'invalid_session') return 'Your session has ended: log in again.';
      return 'Log in or register first.';
    case 402:
      return `Your wallet cannot pay for this run: add credit to your account (402 insufficient funds)${detail}.`;
    case 404:
      return `Not found${detail}.`;
    case 409:
      return `That conflicts with what exists already${detail}.`;
    case 413:
      return `Too large${detail}.`;
    case 429:
      if (err.code === 'too_many_concurrent') {
        return `Your account already runs as many programs as it may at once: ${wait} and run again (429).`;
      }
      return `Too many requests: ${wait} before trying again (429 rate limited).`;
    case 503:
      if (err.code === 'no_runner') {
        return `No runner can serve this language right now: ${wait}, or pick a language marked available (503)${detail}.`;
      }
      if (err.code === 'queue_full') return `The job queue is full: ${wait} and run again (503).`;
      return `CodeExec is not available right now: ${wait} and try again (503)${detail}.`;
    case 504:
      return `The run took longer than the edge waits; job ${err.jobId || ''} goes on (504).`;
    default:
      return `The server answered ${err.status} ${err.code}${detail}.`;
  }
}

// A loopback emulator of the code host APIs that batchcred checks tokens
// against, so the browser tests add real tokens through the real client
// code. One server answers for three code hosts, told apart by path prefix:
//   <origin>/github     GitHub Enterprise   (GET /api/v3/user)
//   <origin>/gitlab     GitLab              (GET /api/v4/personal_access_tokens/self, /api/v4/user)
//   <origin>/bitbucket  Bitbucket Server    (GET /rest/api/1.0/users|projects|repos)
// The shapes follow ../shared/reference/codehosts.md, as the Rust
// emulator in tests/support/codehost.rs does.
import { createServer } from "node:http";

/** The token a request carries, in any header the clients use. */
function tokenOf(headers) {
  if (headers["private-token"]) return headers["private-token"];
  const [, token] = (headers.authorization ?? "").split(" ");
  return token ?? null;
}

function json(response, status, body, headers = {}) {
  response.writeHead(status, { "content-type": "application/json", ...headers });
  response.end(JSON.stringify(body));
}

function isoDate(date) {
  return date.toISOString().slice(0, 10);
}

/**
 * Starts the emulator. `tokens` maps a token to
 * `{ owner, scopes: [...], expiresAt?: Date }`; any other token is refused.
 * Resolves with `{ url(prefix), revoke(token), close() }`.
 */
export function startCodeHostEmulator(tokens) {
  const known = new Map(Object.entries(tokens));
  // GitHub pull requests opened "by hand", by `owner/name#number`.
  const pulls = new Map();
  const server = createServer(async (request, response) => {
    const url = new URL(request.url, "http://emulator");
    const token = known.get(tokenOf(request.headers) ?? "");
    const path = url.pathname;
    if (path.includes("/api/v3/repos/") && token) {
      let body = "";
      for await (const chunk of request) body += chunk;
      return githubPulls(pulls, request.method, path, body, response);
    }
    if (path.includes("/api/v3/")) return github(path, token, response);
    if (path.includes("/api/v4/")) return gitlab(path, token, response);
    if (path.includes("/rest/api/1.0/")) return bitbucket(path, url.searchParams, token, response);
    json(response, 404, { message: "Not Found" });
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      resolve({
        url: (prefix) => `http://127.0.0.1:${port}/${prefix}`,
        revoke: (token) => known.delete(token),
        /** A GitHub pull request opened outside batchcred. */
        addPull: (repository, number, title, head) =>
          pulls.set(`${repository}#${number}`, { number, title, head, state: "open" }),
        close: () => new Promise((done) => server.close(done)),
      });
    });
  });
}

function github(path, token, response) {
  if (!token) {
    return json(response, 401, {
      message: "Bad credentials",
      documentation_url: "https://docs.github.com/rest",
    });
  }
  if (!path.endsWith("/api/v3/user")) return json(response, 404, { message: "Not Found" });
  const headers = { "x-oauth-scopes": token.scopes.join(", ") };
  if (token.expiresAt) {
    headers["github-authentication-token-expiration"] =
      `${token.expiresAt.toISOString().slice(0, 19).replace("T", " ")} UTC`;
  }
  json(response, 200, { login: token.owner, id: 1, type: "User" }, headers);
}

/**
 * GitHub's pull request API, as far as following a pull request needs:
 * read it (with its reviews and checks), close and reopen it.
 */
function githubPulls(pulls, method, path, body, response) {
  const origin = path.slice(0, path.indexOf("/api/v3/"));
  const match = path.match(/\/api\/v3\/repos\/([^/]+\/[^/]+)\/(.*)$/);
  if (!match) return json(response, 404, { message: "Not Found" });
  const [, repository, rest] = match;
  if (rest.startsWith("commits/") && rest.endsWith("/status")) {
    return json(response, 200, { state: "pending", statuses: [], total_count: 0 });
  }
  if (rest.startsWith("commits/") && rest.endsWith("/check-runs")) {
    return json(response, 200, { total_count: 0, check_runs: [] });
  }
  const pull = rest.match(/^pulls\/(\d+)(\/reviews)?$/);
  const found = pull && pulls.get(`${repository}#${pull[1]}`);
  if (!found) return json(response, 404, { message: "Not Found" });
  if (pull[2]) return json(response, 200, []);
  if (method === "PATCH") {
    const change = JSON.parse(body || "{}");
    if (change.state) found.state = change.state;
  }
  json(response, 200, {
    number: found.number,
    html_url: `${origin}/${repository}/pull/${found.number}`,
    state: found.state,
    draft: false,
    merged: false,
    merged_at: null,
    title: found.title,
    head: { ref: found.head, sha: "0123456789abcdef0123456789abcdef01234567" },
    base: { ref: "main" },
    requested_reviewers: [],
  });
}

function gitlab(path, token, response) {
  if (!token) return json(response, 401, { message: "401 Unauthorized" });
  if (path.endsWith("/personal_access_tokens/self")) {
    return json(response, 200, {
      id: 42,
      name: "batch changes",
      revoked: false,
      active: true,
      scopes: token.scopes,
      expires_at: token.expiresAt ? isoDate(token.expiresAt) : null,
    });
  }
  if (path.endsWith("/api/v4/user")) {
    return json(response, 200, { id: 7, username: token.owner, state: "active" });
  }
  json(response, 404, { message: "404 Not Found" });
}

function bitbucket(path, query, token, response) {
  const page = (size) => ({ size, limit: 1, isLastPage: true, start: 0, values: [] });
  if (path.endsWith("/users")) {
    // Anonymous access is on: a bad token still gets a 200, without
    // X-AUSERNAME.
    return json(response, 200, page(1), token ? { "x-ausername": token.owner } : {});
  }
  if (!token) {
    return json(response, 401, {
      errors: [{ message: "Authentication failed. Please check your credentials and try again." }],
    });
  }
  const permission = query.get("permission");
  if (path.endsWith("/projects") || path.endsWith("/repos")) {
    return json(response, 200, page(token.scopes.includes(permission) ? 1 : 0));
  }
  json(response, 404, { errors: [{ message: "not found" }] });
}

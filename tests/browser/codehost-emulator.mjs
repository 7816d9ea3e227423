// A loopback emulator of the code host APIs that batchcred checks tokens
// against, so the browser tests add real tokens through the real client
// code. One server answers for every kind of code host, told apart by
// path prefix:
//   <origin>/github     GitHub Enterprise   (GET /api/v3/user)
//   <origin>/gitlab     GitLab              (GET /api/v4/personal_access_tokens/self, /api/v4/user)
//   <origin>/bitbucket  Bitbucket Server    (GET /rest/api/1.0/users|projects|repos)
//   <origin>/bbcloud    Bitbucket Cloud     (GET /api/2.0/user, Basic username:token)
//   <origin>/azure/DefaultCollection
//                       Azure DevOps Server (GET /_apis/connectionData, /_apis/git/repositories)
//   <origin>/gerrit     Gerrit              (GET /a/accounts/self, Basic username:password)
// The shapes follow ../shared/reference/codehosts.md, as the Rust
// emulator in tests/support/codehost.rs does.
import { createServer } from "node:http";

/** The token a request carries, in any header the clients use. */
function tokenOf(headers) {
  if (headers["private-token"]) return headers["private-token"];
  const [, token] = (headers.authorization ?? "").split(" ");
  return token ?? null;
}

/**
 * The `[username, secret]` of a Basic authorization, or null. Bitbucket
 * Cloud, Azure DevOps and Gerrit check the pair, not the secret alone.
 */
function basicOf(headers) {
  const [scheme, encoded] = (headers.authorization ?? "").split(" ");
  if (scheme !== "Basic" || !encoded) return null;
  const decoded = Buffer.from(encoded, "base64").toString("utf8");
  const at = decoded.indexOf(":");
  return at < 0 ? null : [decoded.slice(0, at), decoded.slice(at + 1)];
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
 * `{ owner, scopes: [...], expiresAt?: Date, username? }`; any other token
 * is refused. Where `username` is given (the kinds that authenticate a
 * pair), the token works only with it.
 * Resolves with `{ url(prefix), revoke(token), close() }`.
 */
export function startCodeHostEmulator(tokens) {
  const known = new Map(Object.entries(tokens));
  // GitHub pull requests opened "by hand", by `owner/name#number`.
  const pulls = new Map();
  const server = createServer(async (request, response) => {
    const url = new URL(request.url, "http://emulator");
    const path = url.pathname;
    const basic = basicOf(request.headers);
    const gerritApi = /\/a\/(accounts|projects|changes|config)\//.test(path);
    if (path.includes("/api/2.0/") || path.includes("/_apis/") || gerritApi) {
      const pair = basic && known.get(basic[1]);
      const token = pair && pair.username === basic[0] ? pair : undefined;
      if (path.includes("/api/2.0/")) return bitbucketCloud(path, token, response);
      if (path.includes("/_apis/")) return azureDevOps(path, token, response);
      return gerrit(path, token, response);
    }
    const token = known.get(tokenOf(request.headers) ?? "");
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

function bitbucketCloud(path, token, response) {
  if (!token) return json(response, 401, { type: "error", error: { message: "Unauthorized" } });
  if (!path.endsWith("/api/2.0/user")) {
    return json(response, 404, { type: "error", error: { message: "Resource not found" } });
  }
  json(
    response,
    200,
    { username: token.owner, display_name: token.owner, account_id: "557058:1", type: "user" },
    { "x-oauth-scopes": token.scopes.join(", ") },
  );
}

function azureDevOps(path, token, response) {
  if (!token) {
    // Azure answers a token it does not accept with its sign-in page.
    response.writeHead(203, { "content-type": "text/html; charset=utf-8" });
    return response.end("<html><body>Sign in to your account</body></html>");
  }
  if (path.endsWith("/_apis/connectionData")) {
    return json(response, 200, {
      authenticatedUser: {
        id: "6b1e4d3a-0c59-4c57-9d1c-6a5f3f1f2b11",
        descriptor: `Microsoft.TeamFoundation.Identity;S-1-5-21-${token.owner}`,
        providerDisplayName: token.owner,
        properties: { Account: { $type: "System.String", $value: token.owner } },
      },
    });
  }
  if (path.endsWith("/_apis/git/repositories")) return json(response, 200, { count: 0, value: [] });
  json(response, 404, { message: "TF400898: An Internal Error Occurred." });
}

/** Gerrit's JSON starts with a line that keeps browsers from running it. */
function gerritJson(response, status, body) {
  response.writeHead(status, { "content-type": "application/json; charset=utf-8" });
  response.end(`)]}'\n${JSON.stringify(body)}`);
}

function gerrit(path, token, response) {
  if (!token) {
    response.writeHead(401, { "content-type": "text/plain" });
    return response.end("Unauthorized");
  }
  if (path.endsWith("/a/accounts/self")) {
    return gerritJson(response, 200, {
      _account_id: 1000001,
      name: token.owner,
      username: token.username,
      email: `${token.username}@example.com`,
    });
  }
  response.writeHead(404, { "content-type": "text/plain" });
  response.end("Not found");
}

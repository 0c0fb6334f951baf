-- docs_page: the page GET /docs serves (scripts/api/openapi.lua): a
-- self-contained HTML page, no CDN and no internet access, that fetches
-- /openapi.json and renders the operations, with a small form to try one.
--
-- The HTML, its CSS and its JavaScript are three strings of their own; the
-- page is the HTML with {{css}} and {{js}} replaced by the other two. The
-- script host reads Lua files only, so they live in this module.
--
-- Uses: nothing.

local HTML = [==[
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>runtime API</title>
<style>
{{css}}</style>
</head>
<body>
<header><h1 id="title">runtime API</h1>
<label>Bearer token <input id="token" type="password" autocomplete="off"></label>
<label>X-Tenant-Id <input id="tenant" style="width:120px"></label></header>
<main id="main"><p>Loading /openapi.json ...</p></main>
<script>
{{js}}</script>
</body>
</html>
]==]

local CSS = [==[
body { font: 15px/1.45 system-ui, sans-serif; margin: 0; color: #1d1d1f; background: #fafafa; }
header { background: #20232a; color: #fff; padding: 14px 24px; display: flex; gap: 16px;
  align-items: center; flex-wrap: wrap; }
header h1 { font-size: 19px; margin: 0; flex: 1; }
header input { width: 360px; max-width: 100%; padding: 5px 8px; font: inherit; }
main { max-width: 1000px; margin: 0 auto; padding: 12px 24px 48px; }
h2 { font-size: 17px; margin: 26px 0 8px; text-transform: capitalize; }
details { background: #fff; border: 1px solid #ddd; border-radius: 5px; margin: 6px 0; }
summary { padding: 8px 10px; cursor: pointer; display: flex; gap: 10px; align-items: baseline; }
.m { font: bold 12px monospace; color: #fff; border-radius: 3px; padding: 2px 6px;
  min-width: 52px; text-align: center; }
.GET { background: #2f7bd3; } .POST { background: #2e9d5b; } .PUT { background: #c77d12; }
.PATCH { background: #8a5cc7; } .DELETE { background: #c73a3a; }
.HEAD, .OPTIONS { background: #666; }
.p { font-family: monospace; } .s { color: #555; }
.body { padding: 4px 14px 12px; border-top: 1px solid #eee; }
.tag { font-size: 12px; background: #eee; border-radius: 3px; padding: 1px 5px; margin-left: 4px; }
pre { background: #f3f3f3; padding: 8px; overflow: auto; font-size: 13px; }
textarea { width: 100%; font: 13px monospace; min-height: 80px; }
button { font: inherit; padding: 3px 12px; }
.err { color: #b00; }
]==]

local JS = [==[
"use strict";
function el(tag, attrs, kids) {
  var e = document.createElement(tag);
  Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
  (kids || []).forEach(function (k) {
    e.appendChild(typeof k === "string" ? document.createTextNode(k) : k);
  });
  return e;
}
function pretty(v) { return JSON.stringify(v, null, 2); }
function tryIt(method, path, op) {
  var box = el("div");
  var inputs = {};
  (op.parameters || []).forEach(function (p) {
    if (p.in !== "path") return;
    inputs[p.name] = el("input", { placeholder: p.name });
    box.appendChild(el("label", {}, [p.name + " ", inputs[p.name], " "]));
  });
  var body = op.requestBody ? el("textarea", { placeholder: "JSON body" }) : null;
  if (body) box.appendChild(body);
  var out = el("pre");
  var go = el("button", {}, ["Send"]);
  go.onclick = function () {
    var url = path.replace(/\{(\w+)\}/g, function (_, n) {
      return encodeURIComponent(inputs[n].value);
    });
    var headers = {};
    var token = document.getElementById("token").value.trim();
    var tenant = document.getElementById("tenant").value.trim();
    if (token) headers.Authorization = "Bearer " + token;
    if (tenant) headers["X-Tenant-Id"] = tenant;
    var init = { method: method, headers: headers };
    if (body && body.value.trim()) {
      headers["Content-Type"] = "application/json";
      init.body = body.value;
    }
    out.textContent = "...";
    fetch(url, init).then(function (r) {
      return r.text().then(function (t) {
        try { t = pretty(JSON.parse(t)); } catch (e) { /* not JSON */ }
        out.textContent = r.status + " " + r.statusText + "\n" + t;
      });
    }).catch(function (e) { out.textContent = String(e); });
  };
  box.appendChild(el("div", {}, [go]));
  box.appendChild(out);
  return box;
}
function render(doc) {
  document.getElementById("title").textContent = doc.info.title + " " + doc.info.version;
  var main = document.getElementById("main");
  main.textContent = "";
  if (doc.info.description) main.appendChild(el("p", {}, [doc.info.description]));
  var groups = {};
  Object.keys(doc.paths).sort().forEach(function (path) {
    Object.keys(doc.paths[path]).forEach(function (m) {
      var op = doc.paths[path][m];
      var tag = (op.tags && op.tags[0]) || "other";
      (groups[tag] = groups[tag] || []).push([m.toUpperCase(), path, op]);
    });
  });
  Object.keys(groups).sort().forEach(function (tag) {
    main.appendChild(el("h2", {}, [tag]));
    groups[tag].forEach(function (g) {
      var method = g[0], path = g[1], op = g[2];
      var d = el("details", {}, [el("summary", {}, [
        el("span", { "class": "m " + method }, [method]),
        el("span", { "class": "p" }, [path]),
        el("span", { "class": "s" }, [op.summary || ""]),
      ])]);
      var b = el("div", { "class": "body" });
      if (op.description) b.appendChild(el("p", {}, [op.description]));
      var facts = "scope: " + op["x-scope"] +
        (op["x-permission"] ? ", permission: " + op["x-permission"] : "") +
        (op.security && op.security.length ? ", bearer token required" : ", no token");
      b.appendChild(el("p", { "class": "s" }, [facts]));
      if (op.parameters) {
        b.appendChild(el("p", {}, ["Parameters: " + op.parameters.map(function (p) {
          return p.name + " (" + p.in + (p.required ? ", required" : "") + ")";
        }).join(", ")]));
      }
      if (op.requestBody) {
        b.appendChild(el("p", {}, ["Request body (application/json):"]));
        b.appendChild(el("pre", {}, [pretty(op.requestBody.content["application/json"].schema)]));
      }
      b.appendChild(el("p", {}, ["Try it:"]));
      b.appendChild(tryIt(method, path, op));
      d.appendChild(b);
      main.appendChild(d);
    });
  });
}
fetch("/openapi.json").then(function (r) {
  if (!r.ok) throw new Error("GET /openapi.json: " + r.status);
  return r.json();
}).then(render).catch(function (e) {
  var main = document.getElementById("main");
  main.textContent = "";
  main.appendChild(el("p", { "class": "err" }, [String(e)]));
});
]==]

local parts = { css = CSS, js = JS }

-- The page, built once per environment that requires this module.
return (HTML:gsub("{{(%a+)}}", parts))

// Mission Control: plain JavaScript, no build step. Every data call sends the API token from
// this tab's session storage; the live view reads the SSE event stream through fetch (the
// browser's EventSource cannot send an Authorization header).
"use strict";

(function () {
  var TOKEN_KEY = "platform-api-token";
  var STAGES = ["scaffold", "validation", "e2e", "integration", "deployment"];
  var STATES = ["initiated", "scaffolding", "validating", "e2e_testing", "integrating", "deploying", "completed", "failed", "cancelled"];
  var view = document.getElementById("view");
  var login = document.getElementById("login");
  var nav = document.getElementById("nav");
  var live = document.getElementById("live");
  var statusLine = document.getElementById("status-line");
  var filters = { status: "", type: "" };
  var pages = [null]; // cursors of the pages seen, for "previous"
  var page = 0;
  var refreshTimer = null;
  var pollTimer = null;
  var streamAbort = null;
  var lastEventId = null;

  function token() { return sessionStorage.getItem(TOKEN_KEY); }

  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "class") e.className = attrs[k];
      else if (k === "text") e.textContent = attrs[k];
      else if (k.indexOf("on") === 0) e.addEventListener(k.slice(2), attrs[k]);
      else e.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) {
      if (c === null || c === undefined) return;
      e.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return e;
  }

  function api(method, path) {
    return fetch(path, {
      method: method,
      headers: { "Authorization": "Bearer " + token(), "Accept": "application/json" },
      cache: "no-store"
    }).then(function (r) {
      if (r.status === 401) { signOut("The token was refused; enter it again."); throw new Error("unauthorized"); }
      return r.json().then(function (body) {
        if (!r.ok) {
          var msg = body && body.error ? body.error.code + ": " + body.error.message : "HTTP " + r.status;
          throw new Error(msg);
        }
        return body;
      });
    });
  }

  function ago(ts) {
    if (!ts) return "";
    var s = Math.max(0, Math.round((Date.now() - Date.parse(ts)) / 1000));
    return s < 120 ? s + " s ago" : Math.round(s / 60) + " min ago";
  }

  function duration(a, b) {
    if (!a || !b) return "";
    var ms = Date.parse(b) - Date.parse(a);
    return ms < 1000 ? ms + " ms" : (ms / 1000).toFixed(1) + " s";
  }

  function say(text, bad) {
    statusLine.textContent = text;
    statusLine.className = bad ? "error" : "";
  }

  // ------------------------------------------------------------------ views

  function route() {
    var h = location.hash || "#/workflows";
    var m = h.match(/^#\/workflows\/([0-9a-fA-F-]{36})$/);
    if (m) return { name: "workflow", id: m[1] };
    if (h === "#/agents") return { name: "agents" };
    if (h === "#/dlq") return { name: "dlq" };
    return { name: "workflows" };
  }

  function render() {
    if (!token()) return;
    var r = route();
    Array.prototype.forEach.call(nav.querySelectorAll("a"), function (a) {
      a.classList.toggle("active", a.getAttribute("data-view") === (r.name === "workflow" ? "workflows" : r.name));
    });
    var p;
    if (r.name === "workflow") p = renderWorkflow(r.id);
    else if (r.name === "agents") p = renderAgents();
    else if (r.name === "dlq") p = renderDlq();
    else p = renderWorkflows();
    return p.then(function () {
      view.setAttribute("data-view", r.name);
      view.setAttribute("data-rendered-at", String(Date.now()));
      say("updated " + new Date().toLocaleTimeString());
    }).catch(function (e) { if (e.message !== "unauthorized") say(e.message, true); });
  }

  function scheduleRender() {
    if (refreshTimer) return;
    refreshTimer = setTimeout(function () { refreshTimer = null; render(); }, 150);
  }

  function renderWorkflows() {
    var q = "?limit=20";
    if (filters.status) q += "&status=" + encodeURIComponent(filters.status);
    if (filters.type) q += "&type=" + encodeURIComponent(filters.type);
    if (pages[page]) q += "&cursor=" + encodeURIComponent(pages[page]);
    return api("GET", "/api/v1/workflows" + q).then(function (body) {
      var status = el("select", { id: "filter-status", onchange: function () { filters.status = this.value; pages = [null]; page = 0; render(); } },
        [el("option", { value: "", text: "any state" })].concat(STATES.map(function (s) { return el("option", { value: s, text: s }); })));
      status.value = filters.status;
      var type = el("select", { id: "filter-type", onchange: function () { filters.type = this.value; pages = [null]; page = 0; render(); } },
        [el("option", { value: "", text: "any type" })].concat(["app", "feature", "bugfix"].map(function (s) { return el("option", { value: s, text: s }); })));
      type.value = filters.type;
      var rows = body.workflows.map(function (w) {
        return el("tr", { "data-workflow-id": w.id }, [
          el("td", {}, [el("a", { href: "#/workflows/" + w.id, class: "name", text: w.name })]),
          el("td", { text: w.type }),
          el("td", { class: "state state-" + w.state, text: w.state }),
          el("td", { class: "dim", text: w.current_stage || "" }),
          el("td", { class: "dim", text: ago(w.created_at) }),
          el("td", { class: "mono dim", text: w.id })
        ]);
      });
      var table = el("table", { id: "workflows" }, [
        el("thead", {}, [el("tr", {}, ["name", "type", "state", "stage", "created", "id"].map(function (h) { return el("th", { text: h }); }))]),
        el("tbody", {}, rows.length ? rows : [el("tr", {}, [el("td", { colspan: "6", class: "dim", text: "no workflows" })])])
      ]);
      var pager = el("div", { class: "pager" }, [
        el("button", { id: "page-prev", type: "button", onclick: function () { if (page > 0) { page--; render(); } } }, ["‹ newer"]),
        el("span", { class: "dim", text: "page " + (page + 1) }),
        el("button", { id: "page-next", type: "button", onclick: function () {
          if (body.next_cursor) { pages[page + 1] = body.next_cursor; page++; render(); }
        } }, ["older ›"])
      ]);
      if (page === 0) pager.firstChild.disabled = true;
      if (!body.next_cursor) pager.lastChild.disabled = true;
      view.replaceChildren(el("h2", { text: "Workflows" }),
        el("div", { class: "filters" }, [el("label", { for: "filter-status", text: "state" }), status, el("label", { for: "filter-type", text: "type" }), type]),
        table, pager);
    });
  }

  function renderWorkflow(id) {
    return api("GET", "/api/v1/workflows/" + id).then(function (w) {
      var byStage = {};
      w.tasks.forEach(function (t) { (byStage[t.stage] = byStage[t.stage] || []).push(t); });
      var timeline = el("div", { class: "timeline", id: "timeline" }, STAGES.map(function (s) {
        var tasks = byStage[s] || [];
        var last = tasks[tasks.length - 1];
        var cls = "stage";
        if (w.current_stage === s) cls += " current";
        else if (last && last.status === "succeeded") cls += " done";
        else if (last && (last.status === "failed" || last.status === "dead_lettered")) cls += " bad";
        return el("div", { class: cls, "data-stage": s }, [el("h4", { text: s })].concat(tasks.map(function (t, i) {
          var res = t.result && t.result.outcome ? t.result.outcome : null;
          return el("div", { class: "attempt", "data-task-id": t.id }, [
            el("div", {}, [el("span", { class: "status status-" + t.status, text: t.status }), " · attempt " + (i + 1) + (t.attempts > 1 ? " (" + t.attempts + " dispatches)" : "")]),
            el("div", { class: "dim", text: (t.agent_id || "") + (t.completed_at ? " · " + duration(t.picked_up_at || t.dispatched_at, t.completed_at) : "") }),
            t.error ? el("div", { class: "error", text: t.error }) : null,
            res && res.status === "succeeded" && res.output ? el("div", { class: "dim mono", text: Object.keys(res.output).slice(0, 4).join(", ") }) : null
          ]);
        })));
      }));
      var events = el("table", { id: "events" }, [
        el("thead", {}, [el("tr", {}, ["#", "kind", "from", "to", "at", "data"].map(function (h) { return el("th", { text: h }); }))]),
        el("tbody", {}, w.events.map(function (e) {
          return el("tr", { "data-event-id": String(e.id) }, [
            el("td", { class: "mono dim", text: String(e.id) }), el("td", { text: e.kind }),
            el("td", { text: e.from_state || "" }), el("td", { class: e.to_state ? "state state-" + e.to_state : "", text: e.to_state || "" }),
            el("td", { class: "dim", text: new Date(e.created_at).toLocaleTimeString() }),
            el("td", { class: "mono dim", text: JSON.stringify(e.data) })
          ]);
        }))
      ]);
      var actions = [];
      if (w.state === "failed") {
        actions.push(el("button", { id: "retry", type: "button", class: "danger", onclick: function () {
          this.disabled = true;
          api("POST", "/api/v1/workflows/" + id + "/retry").then(render, function (e) { say(e.message, true); });
        } }, ["Retry from the failed stage"]));
      }
      view.replaceChildren.apply(view, [
        el("h2", {}, [el("a", { href: "#/workflows", text: "Workflows" }), " / " + w.name + " ", el("span", { id: "workflow-state", class: "state state-" + w.state, text: w.state })]),
        el("p", { class: "dim" }, [w.type + " · template " + w.template + " · ", el("span", { class: "mono", text: w.id })]),
        w.failure_reason ? el("p", { class: "error", id: "failure-reason", text: w.failure_reason }) : null,
        el("div", {}, actions),
        el("h3", { text: "Stages" }), timeline,
        el("h3", { text: "Events" }), events].filter(function (c) { return c !== null; }));
    });
  }

  function renderAgents() {
    return api("GET", "/api/v1/agents").then(function (body) {
      var rows = body.agents.map(function (a) {
        return el("tr", { "data-agent-id": a.id }, [
          el("td", { text: a.kind }), el("td", { class: "mono", text: a.id }), el("td", { text: a.version + " (" + a.git_sha.slice(0, 8) + ")" }),
          el("td", { class: "heartbeat", text: ago(a.last_heartbeat) }), el("td", { class: "dim", text: ago(a.started_at) }),
          el("td", { class: "mono dim", text: a.in_flight_task || "idle" })
        ]);
      });
      var counts = STAGES.map(function (k) {
        var n = body.agents.filter(function (a) { return a.kind === k; }).length;
        return el("span", { class: n ? "" : "error", "data-kind": k, text: k + ": " + n + "  " });
      });
      view.replaceChildren(el("h2", { text: "Agents" }), el("p", {}, counts),
        el("table", { id: "agents" }, [
          el("thead", {}, [el("tr", {}, ["kind", "id", "version", "last heartbeat", "started", "in flight"].map(function (h) { return el("th", { text: h }); }))]),
          el("tbody", {}, rows.length ? rows : [el("tr", {}, [el("td", { colspan: "6", class: "error", text: "no live agents" })])])
        ]));
    });
  }

  function renderDlq() {
    return api("GET", "/api/v1/dlq").then(function (body) {
      var sections = body.dlq.map(function (q) {
        var rows = q.entries.map(function (e) {
          return el("tr", { "data-entry": e.id, "data-kind": q.kind }, [
            el("td", { class: "mono", text: e.id }), el("td", { class: "error", text: e.reason }), el("td", { text: String(e.deliveries) }),
            el("td", {}, e.workflow_id ? [el("a", { href: "#/workflows/" + e.workflow_id, class: "mono", text: e.workflow_id.slice(0, 8) })] : []),
            el("td", { class: "mono dim", text: e.task_id || "" }),
            el("td", {}, [el("button", { type: "button", class: "redrive", "data-entry": e.id, "data-kind": q.kind, onclick: function () {
              this.disabled = true;
              api("POST", "/api/v1/dlq/" + q.kind + "/" + encodeURIComponent(e.id) + "/redrive").then(function (r) {
                say("redriven " + e.id + ": workflow " + (r.state || ""));
                render();
              }, function (err) { say(err.message, true); render(); });
            } }, ["Redrive"])])
          ]);
        });
        return el("div", { class: "dlq", "data-kind": q.kind }, [
          el("h3", { text: q.kind + " — " + q.length + " entr" + (q.length === 1 ? "y" : "ies") }),
          rows.length ? el("table", {}, [
            el("thead", {}, [el("tr", {}, ["entry", "reason", "deliveries", "workflow", "task", ""].map(function (h) { return el("th", { text: h }); }))]),
            el("tbody", {}, rows)]) : el("p", { class: "dim", text: "empty" })
        ]);
      });
      view.replaceChildren.apply(view, [el("h2", { text: "Dead letters" })].concat(sections));
    });
  }

  // ------------------------------------------------------------------ live events

  function setLive(on, text) {
    live.className = "live " + (on ? "on" : "off");
    live.textContent = text;
  }

  function connect() {
    if (!token()) return;
    var ctrl = new AbortController();
    streamAbort = ctrl;
    var headers = { "Authorization": "Bearer " + token(), "Accept": "text/event-stream" };
    if (lastEventId) headers["Last-Event-ID"] = lastEventId;
    fetch("/api/v1/events/stream", { headers: headers, signal: ctrl.signal, cache: "no-store" }).then(function (r) {
      if (r.status === 401) { signOut("The token was refused; enter it again."); return; }
      if (!r.ok || !r.body) throw new Error("event stream answered " + r.status);
      setLive(true, "live");
      var reader = r.body.getReader();
      var decoder = new TextDecoder();
      var buf = "";
      function pump() {
        return reader.read().then(function (chunk) {
          if (chunk.done) throw new Error("event stream ended");
          buf += decoder.decode(chunk.value, { stream: true });
          var idx;
          while ((idx = buf.indexOf("\n\n")) >= 0) {
            var block = buf.slice(0, idx);
            buf = buf.slice(idx + 2);
            var id = null, data = "";
            block.split("\n").forEach(function (line) {
              if (line.indexOf("id:") === 0) id = line.slice(3).trim();
              else if (line.indexOf("data:") === 0) data += line.slice(5).trim();
            });
            if (id) { lastEventId = id; live.setAttribute("data-last-event-id", id); }
            if (data) scheduleRender();
          }
          return pump();
        });
      }
      return pump();
    }).catch(function (e) {
      if (ctrl.signal.aborted) return;
      setLive(false, "reconnecting");
      say(e.message, true);
      setTimeout(connect, 1000);
    });
  }

  // ------------------------------------------------------------------ sign-in

  function signOut(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    if (streamAbort) streamAbort.abort();
    if (pollTimer) clearInterval(pollTimer);
    pollTimer = null;
    nav.hidden = true;
    view.hidden = true;
    document.getElementById("signout").hidden = true;
    login.hidden = false;
    setLive(false, "offline");
    var err = document.getElementById("login-error");
    err.hidden = !message;
    err.textContent = message || "";
    document.getElementById("token").focus();
  }

  function start() {
    login.hidden = true;
    nav.hidden = false;
    view.hidden = false;
    document.getElementById("signout").hidden = false;
    connect();
    // Heartbeats are not events: the agents view (and ages) refresh on a timer too.
    pollTimer = setInterval(function () { if (route().name !== "workflow") scheduleRender(); }, 2000);
    render();
  }

  document.getElementById("login-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var t = document.getElementById("token").value.trim();
    if (!t) return;
    sessionStorage.setItem(TOKEN_KEY, t);
    document.getElementById("token").value = "";
    start();
  });
  document.getElementById("signout").addEventListener("click", function () { signOut(""); });
  window.addEventListener("hashchange", render);

  if (token()) start(); else signOut("");
})();

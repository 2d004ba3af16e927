// imgcrawl gallery: live job progress, infinite scroll with filters, image detail,
// HA state. Vanilla JavaScript, no build step; the server renders the first view and
// this script keeps it current through the JSON API.
(() => {
  "use strict";
  const $ = (s, el = document) => el.querySelector(s);
  const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) =>
    ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  const human = (b) => {
    const u = ["B", "KiB", "MiB", "GiB", "TiB"];
    let v = Number(b) || 0, i = 0;
    while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
    return i === 0 ? `${v} B` : `${v.toFixed(1)} ${u[i]}`;
  };
  const body = document.body;
  const pageSize = Number(body.dataset.pageSize) || 100;
  let cursor = body.dataset.nextCursor || "";
  let exhausted = !cursor;
  let loading = false;
  let filters = new URLSearchParams();
  let lastJobs = "", lastOptions = "";

  function token() {
    let t = sessionStorage.getItem("imgcrawl-token");
    if (!t) {
      t = window.prompt("API token (IMGCRAWL_API_TOKEN)");
      if (t) sessionStorage.setItem("imgcrawl-token", t.trim());
    }
    return t;
  }

  async function api(method, url, payload) {
    const headers = {};
    if (method !== "GET") {
      const t = token();
      if (!t) throw new Error("an API token is needed for this");
      headers.Authorization = "Bearer " + t;
    }
    if (payload !== undefined) headers["Content-Type"] = "application/json";
    const res = await fetch(url, { method, headers, body: payload === undefined ? undefined : JSON.stringify(payload) });
    const data = await res.json().catch(() => null);
    if (!res.ok) {
      if (res.status === 401 || res.status === 403) sessionStorage.removeItem("imgcrawl-token");
      throw new Error((data && data.error && data.error.message) || res.statusText);
    }
    return data;
  }

  function notice(msg, error) {
    const n = $("#notice");
    n.textContent = msg;
    n.className = error ? "notice error" : "notice";
    n.hidden = !msg;
  }

  function renderJob(j) {
    const p = j.pages, im = j.images;
    const done = p.fetched + p.failed + im.stored + im.rejected;
    const all = p.discovered + im.discovered;
    const pct = j.state === "completed" || j.state === "stopped" ? 100 : all > 0 ? Math.min(100, Math.round((done * 100) / all)) : 0;
    const title = j.label || (j.seeds && j.seeds[0]) || "";
    const stop = j.state === "running" || j.state === "requested"
      ? `<button class="secondary stop" data-job="${esc(j.job_id)}">Stop</button>` : "";
    return `<article class="job" data-job="${esc(j.job_id)}" data-state="${esc(j.state)}">
  <div class="job-head"><span class="state ${esc(j.state)}">${esc(j.state)}</span><span class="job-seed" title="${esc(title)}">${esc(title)}</span><span class="job-id">${esc(j.job_id)}</span>${stop}</div>
  <div class="bar"><span style="width:${pct}%"></span></div>
  <div class="counters"><span>pages <b class="counter" data-counter="pages_done">${p.fetched + p.failed}</b>/<b class="counter" data-counter="pages_discovered">${p.discovered}</b></span><span>images stored <b class="counter" data-counter="images_stored">${im.stored}</b></span><span>rejected <b class="counter" data-counter="images_rejected">${im.rejected}</b></span><span>pending <b class="counter" data-counter="images_pending">${im.pending}</b></span><span><b class="counter" data-counter="bytes">${human(j.bytes_downloaded)}</b></span><span><b class="counter" data-counter="rate">${j.rate.images_per_sec.toFixed(1)}</b> img/s</span></div>
</article>`;
  }

  function renderCard(img) {
    return `<figure class="card" data-id="${img.id}"><div class="frame"><img class="thumb" loading="lazy" src="${esc(img.links.thumbnail)}" alt="${esc(img.filename || "")}"></div><figcaption><span>${img.width}×${img.height} ${esc(img.format)}</span><span>${human(img.bytes)}</span></figcaption></figure>`;
  }

  function renderHa(s) {
    return s.nodes.map((n) => `<span class="node"><span class="dot${n.healthy ? " up" : ""}"></span>${esc(n.role)} <b>${esc(n.name)}</b> <span class="muted">lag</span> <b class="counter" data-counter="lag_events">${n.lag_events ?? "?"}</b> <span class="muted">applied</span> ${n.checkpoint ?? "?"}<span class="muted">/${s.stream.last_seq}</span></span>`).join("") +
      `<span class="node muted">${esc(s.mode)} node</span>`;
  }

  async function refreshJobs() {
    try {
      const data = await api("GET", "/api/crawl/status?limit=20");
      const jobs = data.jobs.length ? data.jobs.map(renderJob).join("\n") : '<p class="empty">No jobs yet: start one above.</p>';
      if (jobs !== lastJobs) { $("#jobs").innerHTML = jobs; lastJobs = jobs; }
      const options = '<option value="">all jobs</option>' + data.jobs.map((j) =>
        `<option value="${esc(j.job_id)}">${esc((j.label || (j.seeds && j.seeds[0]) || j.job_id).slice(0, 60))}</option>`).join("");
      const select = $('#filters select[name="job"]');
      if (options !== lastOptions && document.activeElement !== select) {
        const chosen = select.value;
        select.innerHTML = options;
        select.value = chosen;
        lastOptions = options;
      }
    } catch (e) { /* keep the last view */ }
  }

  async function refreshHa() {
    try { $("#ha").innerHTML = renderHa(await api("GET", "/api/ha-status")); } catch (e) { /* keep */ }
  }

  async function loadMore() {
    if (loading || exhausted) return;
    loading = true;
    const q = new URLSearchParams(filters);
    q.set("limit", String(pageSize));
    if (cursor) q.set("cursor", cursor);
    try {
      const page = await api("GET", "/api/images?" + q.toString());
      $("#grid").insertAdjacentHTML("beforeend", page.items.map(renderCard).join(""));
      cursor = page.next_cursor || "";
      exhausted = !cursor;
      $("#sentinel").textContent = exhausted ? ($("#grid").children.length ? "that is all" : "no images match") : "loading more…";
    } catch (e) {
      $("#sentinel").textContent = "could not load images: " + e.message;
    } finally {
      loading = false;
    }
  }

  function applyFilters(ev) {
    ev.preventDefault();
    filters = new URLSearchParams();
    for (const [k, v] of new FormData($("#filters"))) if (String(v).trim()) filters.set(k, String(v).trim());
    $("#grid").innerHTML = "";
    cursor = "";
    exhausted = false;
    loadMore();
  }

  async function showDetail(id) {
    try {
      const d = await api("GET", `/api/images/${id}`);
      const i = d.image;
      $("#detail-img").src = i.links.content;
      $("#detail-title").textContent = i.filename || i.url;
      const facts = [["size", `${i.width}×${i.height} px`], ["format", `${i.format} (${i.content_type})`], ["bytes", `${human(i.bytes)} (${i.bytes})`],
        ["sha256", i.sha256], ["first seen", i.first_seen_at], ["last seen", i.last_seen_at], ["object", d.object_key || "—"]];
      $("#detail-facts").innerHTML = facts.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(v)}</dd>`).join("");
      $("#detail-sources").innerHTML = d.sources.map((s) => `<li><a href="${esc(s.url)}" target="_blank" rel="noopener noreferrer">${esc(s.url)}</a> <span class="muted">${esc(s.found_by || "")}${s.alt ? " · alt “" + esc(s.alt) + "”" : ""}</span></li>`).join("") + (d.sources_truncated ? "<li>…</li>" : "");
      $("#detail-pages").innerHTML = d.pages.map((p) => `<li><a href="${esc(p.url)}" target="_blank" rel="noopener noreferrer">${esc(p.title || p.url)}</a> <span class="muted">${p.http_status ?? ""}</span></li>`).join("");
      $("#detail-open").href = i.links.content;
      $("#detail-delete").dataset.id = String(i.id);
      if (!$("#detail").open) $("#detail").showModal();
      history.replaceState(null, "", `#image=${i.id}`);
    } catch (e) { notice(e.message, true); }
  }

  async function deleteShown() {
    const id = $("#detail-delete").dataset.id;
    if (!id || !window.confirm("Delete this image? It stays deleted, even if crawled again.")) return;
    try {
      await api("DELETE", `/api/images/${id}`);
      const card = document.querySelector(`.card[data-id="${id}"]`);
      if (card) card.remove();
      $("#detail").close();
      notice(`image ${id} deleted`);
    } catch (e) { notice(e.message, true); }
  }

  async function startCrawl(ev) {
    ev.preventDefault();
    const payload = { url: $("#start-url").value.trim() };
    const depth = $("#start-depth").value.trim();
    if (depth) payload.scope = { max_depth: Number(depth) };
    try {
      const r = await api("POST", "/api/crawl/start", payload);
      notice(`crawl ${r.job_id} requested`);
      $("#start-url").value = "";
      refreshJobs();
    } catch (e) { notice(e.message, true); }
  }

  async function stopJob(job) {
    try {
      await api("POST", "/api/crawl/stop", { job_id: job });
      notice(`stop requested for ${job}`);
      refreshJobs();
    } catch (e) { notice(e.message, true); }
  }

  $("#filters").addEventListener("submit", applyFilters);
  $("#start-form").addEventListener("submit", startCrawl);
  $("#grid").addEventListener("click", (ev) => {
    const card = ev.target.closest(".card");
    if (card) showDetail(card.dataset.id);
  });
  $("#jobs").addEventListener("click", (ev) => {
    const b = ev.target.closest("button.stop");
    if (b) stopJob(b.dataset.job);
  });
  $("#detail-close").addEventListener("click", () => $("#detail").close());
  $("#detail").addEventListener("close", () => history.replaceState(null, "", location.pathname + location.search));
  const linked = /^#image=(\d+)$/.exec(location.hash);
  if (linked) showDetail(linked[1]);
  $("#detail-delete").addEventListener("click", deleteShown);
  new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) loadMore();
  }, { rootMargin: "400px" }).observe($("#sentinel"));
  setInterval(refreshJobs, 2000);
  setInterval(refreshHa, 5000);
})();

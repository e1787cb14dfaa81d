// pointseg view in a browser: every panel of a comparison (ground truth | model A | model B ...)
// drawn by one small WebGL 2 program under ONE shared camera. No library, no network: the page
// carries its data (base64, `pointseg view --export-html`) or fetches it from the server that
// served it (`pointseg view --web`). Points are coloured on the GPU from their labels, so
// switching a colouring, isolating or hiding a class re-uploads nothing.
(() => {
  "use strict";
  const META = JSON.parse(document.getElementById("pointseg-meta").textContent);
  const $ = (id) => document.getElementById(id);
  const MODES = META.coloring_order; // rgb gt pred errors diff (keys 1..5)
  const VIEWS = META.views; // top iso front (key V)
  const KEYS = [
    ["1 2 3 4 5", "colour by RGB / ground truth / predictions / errors / difference"],
    ["Space", "next colouring"],
    ["C / X", "isolate the next / previous class"],
    ["A", "all classes again"],
    ["H", "hide / show the ceiling"],
    ["+ / -", "point size up / down"],
    ["V", "next camera (" + VIEWS.join(", ") + ")"],
    ["R", "reset the camera"],
    ["S", "screenshot with labels (PNG download)"],
    ["I", "show / hide these keys"],
    ["Esc", "hide these keys (a browser tab is closed by the browser: Q does nothing here)"],
  ];
  const S = {
    coloring: META.initial.coloring,
    view: META.initial.view,
    hideCeiling: META.initial.hide_ceiling,
    isolate: META.initial.isolate, // class id or null
    hidden: new Set(),
    pointSize: META.initial.point_size,
    diff: META.diff ? META.diff.slice() : null,
    cam: null, // {yaw, pitch, target[3], half}
  };
  const API = (window.pointseg = { meta: META, state: S, frames: 0, ready: false, error: null });

  // ------------------------------------------------------------------ data
  function fromBase64(text) {
    const bin = atob(text.replace(/\s+/g, ""));
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  async function loadBlob() {
    const inline = $("pointseg-data").textContent.trim();
    let blob;
    if (inline) blob = fromBase64(inline);
    else {
      const r = await fetch(META.data_url, { cache: "no-store" });
      if (!r.ok) throw new Error("could not load " + META.data_url + " from the server (" + r.status + ")");
      blob = new Uint8Array(await r.arrayBuffer());
    }
    if (blob.length !== META.blob_bytes)
      throw new Error("the point data is " + blob.length + " bytes, expected " + META.blob_bytes + " (truncated file or transfer?)");
    return blob;
  }

  function view(blob, name) {
    const a = META.arrays[name];
    if (!a) return null;
    const n = a.count * a.comps;
    return a.type === "u16" ? new Uint16Array(blob.buffer, blob.byteOffset + a.offset, n)
                            : new Uint8Array(blob.buffer, blob.byteOffset + a.offset, n);
  }

  // ------------------------------------------------------------------ WebGL
  const VS = `#version 300 es
precision highp float; precision highp int;
in vec3 a_pos; in vec3 a_rgb; in uint a_gt; in uint a_pred; in uint a_pa; in uint a_pb;
uniform vec3 u_lo, u_span, u_target, u_right, u_up, u_front, u_scale;
uniform float u_size, u_ceilZ;
uniform int u_mode, u_isolate, u_ceiling;
uniform bool u_model, u_hasGt, u_hideCeiling, u_rgbPanel;
uniform sampler2D u_classes;
uniform vec3 u_correct, u_wrong, u_d0, u_d1, u_d2, u_d3;
out vec3 v_col;
vec4 cls(uint c) { return texelFetch(u_classes, ivec2(int(c), 0), 0); }
void main() {
  vec3 p = u_lo + a_pos * u_span;
  int gt = int(a_gt), pr = int(a_pred);
  bool vis = true;
  if (u_hideCeiling) vis = u_hasGt ? gt != u_ceiling : p.z < u_ceilZ;
  if ((u_hasGt || u_model) && cls(u_hasGt ? a_gt : a_pred).a < 0.5) vis = false;
  if (u_isolate >= 0) vis = vis && ((u_hasGt && gt == u_isolate) || (u_model && pr == u_isolate));
  if (!vis) { gl_Position = vec4(2.0, 2.0, 2.0, 1.0); gl_PointSize = 1.0; v_col = vec3(0.0); return; }
  vec3 c;
  if (u_mode == 0 || u_rgbPanel) c = a_rgb;
  else if (u_mode == 1) c = cls(a_gt).rgb;
  else if (u_mode == 2 || !u_model) c = cls(a_pred).rgb;
  else if (u_mode == 3) c = pr == gt ? u_correct : u_wrong;
  else if (u_hasGt) {
    bool ra = a_pa == a_gt, rb = a_pb == a_gt;
    c = ra && rb ? u_d2 : ra ? u_d0 : rb ? u_d1 : u_d3;
  } else c = a_pa == a_pb ? u_d2 : u_d3;
  v_col = c;
  vec3 d = p - u_target;
  gl_Position = vec4(dot(d, u_right) * u_scale.x, dot(d, u_up) * u_scale.y, -dot(d, u_front) * u_scale.z, 1.0);
  gl_PointSize = u_size;
}`;
  const FS = `#version 300 es
precision highp float;
in vec3 v_col; out vec4 o;
void main() { o = vec4(v_col, 1.0); }`;
  const ATTRS = ["a_pos", "a_rgb", "a_gt", "a_pred", "a_pa", "a_pb"];
  let gl, prog, classTex, vao, canvas;
  const U = {}, B = {};
  const N = META.shown;

  function compile(type, src) {
    const s = gl.createShader(type);
    gl.shaderSource(s, src);
    gl.compileShader(s);
    if (!gl.getShaderParameter(s, gl.COMPILE_STATUS)) throw new Error("shader: " + gl.getShaderInfoLog(s));
    return s;
  }

  function initGL(blob) {
    canvas = $("gl");
    gl = canvas.getContext("webgl2", { antialias: false, alpha: false, preserveDrawingBuffer: true });
    if (!gl) throw new Error("this browser cannot draw WebGL 2 (enable hardware acceleration, or use a current Chrome, Firefox, Safari or Edge)");
    prog = gl.createProgram();
    gl.attachShader(prog, compile(gl.VERTEX_SHADER, VS));
    gl.attachShader(prog, compile(gl.FRAGMENT_SHADER, FS));
    ATTRS.forEach((a, i) => gl.bindAttribLocation(prog, i, a));
    gl.linkProgram(prog);
    if (!gl.getProgramParameter(prog, gl.LINK_STATUS)) throw new Error("shader link: " + gl.getProgramInfoLog(prog));
    const n = gl.getProgramParameter(prog, gl.ACTIVE_UNIFORMS);
    for (let i = 0; i < n; i++) {
      const name = gl.getActiveUniform(prog, i).name;
      U[name] = gl.getUniformLocation(prog, name);
    }
    vao = gl.createVertexArray();
    gl.bindVertexArray(vao);
    for (const name of Object.keys(META.arrays)) {
      B[name] = gl.createBuffer();
      gl.bindBuffer(gl.ARRAY_BUFFER, B[name]);
      gl.bufferData(gl.ARRAY_BUFFER, view(blob, name), gl.STATIC_DRAW);
    }
    classTex = gl.createTexture();
    gl.bindTexture(gl.TEXTURE_2D, classTex);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.NEAREST);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.NEAREST);
    canvas.addEventListener("webglcontextlost", (e) => { e.preventDefault(); fail("the browser dropped the WebGL context (GPU reset or out of memory): reload the page"); });
  }

  function uploadClasses() {
    const pal = META.palette, data = new Uint8Array(pal.length * 4);
    pal.forEach((c, i) => { data.set(c, 4 * i); data[4 * i + 3] = S.hidden.has(i) ? 0 : 255; });
    gl.bindTexture(gl.TEXTURE_2D, classTex);
    gl.pixelStorei(gl.UNPACK_ALIGNMENT, 1);
    gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA8, pal.length, 1, 0, gl.RGBA, gl.UNSIGNED_BYTE, data);
  }

  function bindFloat(loc, name, comps, constant) {
    gl.bindBuffer(gl.ARRAY_BUFFER, null);
    if (name && B[name]) {
      const a = META.arrays[name];
      gl.bindBuffer(gl.ARRAY_BUFFER, B[name]);
      gl.enableVertexAttribArray(loc);
      gl.vertexAttribPointer(loc, comps, a.type === "u16" ? gl.UNSIGNED_SHORT : gl.UNSIGNED_BYTE, true, 0, 0);
    } else {
      gl.disableVertexAttribArray(loc);
      gl.vertexAttrib4f(loc, constant[0], constant[1], constant[2], 1);
    }
  }

  function bindInt(loc, name) {
    if (name && B[name]) {
      const a = META.arrays[name];
      gl.bindBuffer(gl.ARRAY_BUFFER, B[name]);
      gl.enableVertexAttribArray(loc);
      gl.vertexAttribIPointer(loc, 1, a.type === "u16" ? gl.UNSIGNED_SHORT : gl.UNSIGNED_BYTE, 0, 0);
    } else {
      gl.disableVertexAttribArray(loc);
      gl.vertexAttribI4ui(loc, 0, 0, 0, 0);
    }
  }

  // ------------------------------------------------------------------ camera
  const RAD = Math.PI / 180;
  function axes(cam) {
    const y = cam.yaw * RAD, p = cam.pitch * RAD;
    const f = [Math.cos(p) * Math.cos(y), Math.cos(p) * Math.sin(y), Math.sin(p)];
    const r = [-Math.sin(y), Math.cos(y), 0]; // = normalize(z x f), defined at the poles too
    const u = [f[1] * r[2] - f[2] * r[1], f[2] * r[0] - f[0] * r[2], f[0] * r[1] - f[1] * r[0]];
    return { f, r, u };
  }
  const dot = (a, b) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
  const LO = META.lo, HI = META.hi;
  const CENTRE = [0, 1, 2].map((i) => (LO[i] + HI[i]) / 2);
  const RADIUS = Math.hypot(HI[0] - LO[0], HI[1] - LO[1], HI[2] - LO[2]) / 2 || 1;

  function layout() {
    const P = META.panels.length;
    const cols = P <= 4 ? P : Math.ceil(Math.sqrt(P));
    const rows = Math.ceil(P / cols);
    const W = canvas.clientWidth, H = canvas.clientHeight;
    const w = W / cols, h = H / rows;
    return META.panels.map((_, i) => ({ x: (i % cols) * w, y: Math.floor(i / cols) * h, w, h }));
  }

  function presetCamera(name) {
    const c = META.cameras[name];
    const cam = { yaw: c.yaw, pitch: c.pitch, target: CENTRE.slice(), half: 1 };
    const { r, u } = axes(cam);
    let h0 = Infinity, h1 = -Infinity, v0 = Infinity, v1 = -Infinity;
    for (const x of [LO[0], HI[0]]) for (const y of [LO[1], HI[1]]) for (const z of [LO[2], HI[2]]) {
      const p = [x, y, z], a = dot(p, r), b = dot(p, u);
      h0 = Math.min(h0, a); h1 = Math.max(h1, a); v0 = Math.min(v0, b); v1 = Math.max(v1, b);
    }
    const vp = layout()[0];
    const aspect = vp.w / Math.max(vp.h - 26, 1); // room for the panel label
    cam.half = (Math.max((v1 - v0) / 2, (h1 - h0) / 2 / aspect) / 0.94) * (vp.h / Math.max(vp.h - 26, 1)) || 1;
    return cam;
  }

  // ------------------------------------------------------------------ drawing
  // Level of detail while the camera moves: the points are stored in random order, so the first
  // k of them are a uniform sample. When a full frame took longer than MOVE_MS (software WebGL,
  // a weak GPU, millions of points), frames during a drag draw only as many as fit in MOVE_MS;
  // the full frame follows as soon as the mouse rests.
  const MOVE_MS = 40;
  let pending = false, moving = false, moveTimer = null, fullMs = 0;
  function redraw() {
    if (!pending && gl) { pending = true; requestAnimationFrame(() => render()); }
  }
  function moved() {
    moving = true;
    clearTimeout(moveTimer);
    moveTimer = setTimeout(() => { moving = false; redraw(); }, 180);
    redraw();
  }

  function render(sync) {
    pending = false;
    const t0 = performance.now();
    const count = moving && fullMs > MOVE_MS ? Math.max(Math.min(N, 20000), Math.floor((N * MOVE_MS) / fullMs)) : N;
    const dpr = window.devicePixelRatio || 1;
    const W = Math.round(canvas.clientWidth * dpr), H = Math.round(canvas.clientHeight * dpr);
    if (canvas.width !== W || canvas.height !== H) { canvas.width = W; canvas.height = H; }
    gl.disable(gl.SCISSOR_TEST);
    gl.clearColor(1, 1, 1, 1);
    gl.clear(gl.COLOR_BUFFER_BIT | gl.DEPTH_BUFFER_BIT);
    gl.enable(gl.DEPTH_TEST);
    gl.depthFunc(gl.LESS);
    gl.useProgram(prog);
    gl.bindVertexArray(vao);
    gl.activeTexture(gl.TEXTURE0);
    gl.bindTexture(gl.TEXTURE_2D, classTex);
    gl.uniform1i(U.u_classes, 0);
    const cam = S.cam, { f, r, u } = axes(cam);
    const off = Math.hypot(cam.target[0] - CENTRE[0], cam.target[1] - CENTRE[1], cam.target[2] - CENTRE[2]);
    gl.uniform3fv(U.u_lo, LO);
    gl.uniform3fv(U.u_span, [0, 1, 2].map((i) => HI[i] - LO[i]));
    gl.uniform3fv(U.u_target, cam.target);
    gl.uniform3fv(U.u_right, r);
    gl.uniform3fv(U.u_up, u);
    gl.uniform3fv(U.u_front, f);
    gl.uniform1f(U.u_size, S.pointSize * dpr);
    gl.uniform1f(U.u_ceilZ, META.ceiling_z);
    gl.uniform1i(U.u_mode, MODES.indexOf(S.coloring));
    gl.uniform1i(U.u_isolate, S.isolate === null ? -1 : S.isolate);
    gl.uniform1i(U.u_ceiling, META.ceiling);
    gl.uniform1i(U.u_hasGt, META.has_gt ? 1 : 0);
    gl.uniform1i(U.u_hideCeiling, S.hideCeiling ? 1 : 0);
    const C = META.colors, n = (c) => c.map((v) => v / 255);
    gl.uniform3fv(U.u_correct, n(C.correct));
    gl.uniform3fv(U.u_wrong, n(C.wrong));
    ["u_d0", "u_d1", "u_d2", "u_d3"].forEach((k, i) => gl.uniform3fv(U[k], n(C.diff[i])));
    bindFloat(0, "pos", 3, [0, 0, 0]);
    bindFloat(1, META.has_rgb ? "rgb" : null, 3, n(C.no_rgb));
    bindInt(2, META.has_gt ? "gt" : null);
    const models = META.models;
    const pa = S.diff ? "pred" + models.indexOf(S.diff[0]) : null;
    const pb = S.diff ? "pred" + models.indexOf(S.diff[1]) : null;
    bindInt(4, pa);
    bindInt(5, pb);
    const rects = layout();
    gl.enable(gl.SCISSOR_TEST);
    META.panels.forEach((panel, i) => {
      const vp = rects[i];
      const x = Math.round(vp.x * dpr), w = Math.round(vp.w * dpr), h = Math.round(vp.h * dpr);
      const y = H - Math.round(vp.y * dpr) - h;
      gl.viewport(x, y, w, h);
      gl.scissor(x, y, w, h);
      const aspect = w / h;
      gl.uniform3fv(U.u_scale, [1 / (cam.half * aspect), 1 / cam.half, 1 / (RADIUS + off + 1e-6)]);
      gl.uniform1i(U.u_model, panel.model ? 1 : 0);
      gl.uniform1i(U.u_rgbPanel, !panel.model && !META.has_gt ? 1 : 0);
      bindInt(3, panel.model ? "pred" + panel.pred : META.has_gt ? "gt" : null);
      gl.drawArrays(gl.POINTS, 0, count);
    });
    if (count === N && (sync || !API.ready || API.frames % 16 === 0)) {
      gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, new Uint8Array(4)); // waits for the GPU
      fullMs = performance.now() - t0;
    }
    API.drawn = count;
    API.frames += 1;
    document.body.dataset.frames = String(API.frames);
    if (!API.ready) { API.ready = true; document.body.dataset.ready = "1"; }
  }

  // ------------------------------------------------------------------ controls
  function setColoring(mode) {
    const c = META.colorings[mode];
    if (!c) return;
    if (!c.ok) { note(c.why); return; }
    S.coloring = mode;
    sync();
  }
  function nextColoring() {
    const i = MODES.indexOf(S.coloring);
    for (let k = 1; k <= MODES.length; k++) {
      const m = MODES[(i + k) % MODES.length];
      if (META.colorings[m].ok) { setColoring(m); return; }
    }
  }
  function setIsolate(c) { S.isolate = c; sync(); }
  function cycleClass(step) {
    const ids = META.classes.map((c) => c.id);
    if (!ids.length) return;
    let next;
    const j = ids.indexOf(S.isolate);
    if (S.isolate === null || j < 0) next = step > 0 ? ids[0] : ids[ids.length - 1];
    else next = j + step >= 0 && j + step < ids.length ? ids[j + step] : null; // past the end: all
    setIsolate(next);
  }
  function toggleHidden(c) {
    if (S.hidden.has(c)) S.hidden.delete(c); else S.hidden.add(c);
    uploadClasses();
    sync();
  }
  function setCeiling(hide) { S.hideCeiling = hide; sync(); }
  function setPointSize(v) { S.pointSize = Math.min(20, Math.max(1, v)); sync(); }
  function setView(name) { S.view = name; S.cam = presetCamera(name); sync(); }
  function setDiff(a, b) { S.diff = [a, b]; sync(); }
  // benchmarks/web_view.py: mean milliseconds of `n` full redraws (camera turning), GPU included
  function timeFrames(n, whileMoving) {
    moving = Boolean(whileMoving);
    const px = new Uint8Array(4), t0 = performance.now();
    for (let i = 0; i < n; i++) {
      S.cam.yaw += 1;
      render(true);
      gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, px);
    }
    const ms = (performance.now() - t0) / n;
    moving = false;
    return ms;
  }
  Object.defineProperty(API, "moving", { get: () => moving || pending });
  Object.assign(API, { timeFrames, setColoring, setIsolate, cycleClass, toggleHidden, setCeiling, setPointSize, setView, setDiff, panelRects: () => layout() });

  let noteTimer = null;
  function note(text) {
    const s = $("status");
    s.textContent = text;
    s.classList.add("warn");
    clearTimeout(noteTimer);
    noteTimer = setTimeout(statusLine, 4000);
  }
  function fmt(n) { return n.toLocaleString("en-US"); }
  function statusLine() {
    const s = $("status"), P = META.panels.length;
    s.classList.remove("warn");
    let t = fmt(META.num_points) + " points";
    if (META.shown < META.num_points)
      t += "; shown: " + fmt(META.shown) + " per panel (" + fmt(META.shown * P) + " in all" +
        (META.voxel > 0 ? ", one per " + (100 * META.voxel).toFixed(1) + " cm voxel" : "") +
        ") for display only: metrics use every point";
    else t += " in each panel";
    const parts = [META.colorings[S.coloring].title, S.view + " view"];
    if (S.hideCeiling) parts.push("ceiling hidden");
    if (S.isolate !== null) parts.push("only " + META.class_names[S.isolate]);
    if (S.hidden.size) parts.push(S.hidden.size + " class(es) hidden");
    s.textContent = t + " — " + parts.join(", ");
  }

  function swatch(rgb) {
    const s = document.createElement("span");
    s.className = "swatch";
    s.style.background = "rgb(" + rgb.join(",") + ")";
    return s;
  }
  function button(text, key, onclick, id) {
    const b = document.createElement("button");
    b.textContent = text + " ";
    if (key) { const k = document.createElement("kbd"); k.textContent = key; b.appendChild(k); b.title = "key " + key; }
    if (id) b.id = id;
    b.addEventListener("click", () => { onclick(); canvas && canvas.focus({ preventScroll: true }); });
    return b;
  }
  const pct = (v) => (v === null || v === undefined ? "–" : v.toFixed(1));

  function buildUI() {
    const names = { rgb: "RGB", gt: "ground truth", pred: "prediction", errors: "errors", diff: "difference" };
    MODES.forEach((m, i) => {
      const b = button(names[m] || m, String(i + 1), () => setColoring(m), "color-" + m);
      b.dataset.coloring = m;
      if (!META.colorings[m].ok) { b.disabled = true; b.title = META.colorings[m].why; }
      $("colorings").appendChild(b);
    });
    if (META.models.length >= 2) {
      $("diffpair").hidden = false;
      for (const id of ["diff-a", "diff-b"]) {
        const sel = $(id);
        META.models.forEach((m) => { const o = document.createElement("option"); o.value = o.textContent = m; sel.appendChild(o); });
        sel.addEventListener("change", () => {
          if ($("diff-a").value === $("diff-b").value) { note("the difference compares two different models"); sync(); return; }
          setDiff($("diff-a").value, $("diff-b").value);
        });
      }
    }
    VIEWS.forEach((v, i) => {
      const b = button(v, i === 0 ? "V" : "", () => setView(v), "view-" + v);
      b.dataset.view = v;
      $("views").appendChild(b);
    });
    $("all-classes").addEventListener("click", () => setIsolate(null));
    $("ceiling").addEventListener("change", (e) => setCeiling(e.target.checked));
    $("reset").addEventListener("click", () => setView(S.view));
    $("shot").addEventListener("click", screenshot);
    $("help-toggle").addEventListener("click", () => { $("help").hidden = !$("help").hidden; });
    $("point-size").addEventListener("input", (e) => setPointSize(Number(e.target.value)));
    // class table: hide box, swatch + name (isolate), ground-truth points, IoU of every model
    const t = $("classes"), head = t.insertRow();
    if (!META.classes.length) {
      t.closest("section").querySelector("h2 .hint").textContent = "none: no labels in this room";
      t.hidden = true;
    }
    const th = (text, title) => { const c = document.createElement("th"); c.textContent = text; if (title) c.title = title; head.appendChild(c); };
    th("hide"); th("class"); if (META.has_gt) th("points", "ground-truth points (every point)");
    if (META.has_gt) META.models.forEach((m) => th(m, "IoU % of " + m + " on every point"));
    META.classes.forEach((c) => {
      const row = t.insertRow();
      row.dataset.class = c.name;
      const hide = document.createElement("input");
      hide.type = "checkbox";
      hide.title = "hide " + c.name + " in every panel";
      hide.addEventListener("change", () => toggleHidden(c.id));
      row.insertCell().appendChild(hide);
      const name = row.insertCell();
      name.className = "name";
      const b = document.createElement("button");
      b.appendChild(swatch(c.color));
      b.appendChild(document.createTextNode(c.name));
      b.title = "show only " + c.name + " (click again: all classes)";
      b.addEventListener("click", () => { setIsolate(S.isolate === c.id ? null : c.id); canvas.focus({ preventScroll: true }); });
      name.appendChild(b);
      if (META.has_gt) row.insertCell().textContent = fmt(c.gt_points);
      if (META.has_gt) META.models.forEach((m) => { row.insertCell().textContent = pct(c.iou[m]); });
    });
    if (META.has_gt && META.models.length) {
      for (const [key, label] of [["miou", "mIoU"], ["oa", "OA"], ["macc", "mAcc"]]) {
        const row = t.insertRow();
        row.className = key === "miou" ? "total" : "";
        row.insertCell();
        const c = row.insertCell(); c.className = "name"; c.textContent = label;
        row.insertCell();
        META.models.forEach((m) => { row.insertCell().textContent = pct(META.metrics[m][key]); });
      }
    }
    const kt = $("keys");
    KEYS.forEach(([k, v]) => { const r = kt.insertRow(); r.insertCell().textContent = k; r.insertCell().textContent = v; });
    $("about").textContent = "pointseg view — " + fmt(META.num_points) + " points, " + META.panels.length +
      " panels; IoU, OA, mAcc, mIoU and counts on every point of the room.";
  }

  function buildLabels() {
    const box = $("labels");
    box.textContent = "";
    layout().forEach((vp, i) => {
      const d = document.createElement("div");
      d.className = "panel-box";
      Object.assign(d.style, { left: vp.x + "px", top: vp.y + "px", width: vp.w + "px", height: vp.h + "px" });
      const l = document.createElement("div");
      l.className = "panel-label";
      l.textContent = META.panels[i].title;
      d.appendChild(l);
      box.appendChild(d);
    });
  }

  function sync() {
    document.querySelectorAll("#colorings button").forEach((b) => b.classList.toggle("on", b.dataset.coloring === S.coloring));
    document.querySelectorAll("#views button").forEach((b) => b.classList.toggle("on", b.dataset.view === S.view));
    document.querySelectorAll("#classes tr[data-class]").forEach((r) => {
      const id = META.class_names.indexOf(r.dataset.class);
      r.classList.toggle("isolated", S.isolate === id);
      r.classList.toggle("hidden", S.hidden.has(id));
      r.querySelector("input").checked = S.hidden.has(id);
    });
    $("ceiling").checked = S.hideCeiling;
    $("point-size").value = String(S.pointSize);
    $("point-size-value").textContent = String(S.pointSize);
    if (S.diff) { $("diff-a").value = S.diff[0]; $("diff-b").value = S.diff[1]; }
    const lg = $("colorlegend"), C = META.colors;
    lg.textContent = "";
    const entry = (rgb, text) => { const d = document.createElement("div"); if (rgb) d.appendChild(swatch(rgb)); d.appendChild(document.createTextNode(text)); lg.appendChild(d); };
    if (S.coloring === "rgb") entry(META.has_rgb ? null : C.no_rgb, META.has_rgb ? "scanned colours" : "no colours in this room: grey");
    else if (S.coloring === "gt") entry(null, "ground truth in every panel (press 3 to see each model's prediction in place); class colours in the table");
    else if (S.coloring === "pred") entry(null, "classes: the truth panel its ground truth, each model panel its prediction; class colours in the table");
    else if (S.coloring === "errors") { entry(C.correct, "correct"); entry(C.wrong, "wrong"); }
    else if (S.coloring === "diff" && S.diff) {
      const [a, b] = S.diff, k = META.diff_counts[a + "\t" + b];
      const cnt = (i) => (k ? " (" + fmt(k[i]) + ")" : "");
      if (META.has_gt) {
        entry(C.diff[0], a + " right, " + b + " wrong" + cnt(0));
        entry(C.diff[1], b + " right, " + a + " wrong" + cnt(1));
        entry(C.diff[2], "both right" + cnt(2));
        entry(C.diff[3], "both wrong" + cnt(3));
      } else { entry(C.diff[2], a + " = " + b + cnt(2)); entry(C.diff[3], a + " ≠ " + b + cnt(3)); }
    }
    statusLine();
    redraw();
  }

  // ------------------------------------------------------------------ screenshot (S)
  let shots = 0;
  function screenshot() {
    render(); // preserveDrawingBuffer: the canvas holds this frame
    const dpr = window.devicePixelRatio || 1, head = Math.round(28 * dpr);
    const out = document.createElement("canvas");
    out.width = canvas.width;
    out.height = canvas.height + head;
    const g = out.getContext("2d");
    g.fillStyle = "#fff";
    g.fillRect(0, 0, out.width, out.height);
    g.drawImage(canvas, 0, head);
    g.fillStyle = "#222";
    g.font = Math.round(13 * dpr) + "px sans-serif";
    g.textBaseline = "middle";
    g.fillText($("title").textContent + " — " + $("status").textContent, 6 * dpr, head / 2);
    g.font = "bold " + Math.round(14 * dpr) + "px sans-serif";
    g.textAlign = "center";
    layout().forEach((vp, i) => g.fillText(META.panels[i].title, (vp.x + vp.w / 2) * dpr, head + (vp.y + 14) * dpr));
    shots += 1;
    const a = document.createElement("a");
    a.download = "pointseg_view_" + shots + ".png";
    a.href = out.toDataURL("image/png");
    a.click();
  }

  // ------------------------------------------------------------------ mouse and keys
  function bindInput() {
    let drag = null;
    canvas.addEventListener("contextmenu", (e) => e.preventDefault());
    canvas.addEventListener("pointerdown", (e) => {
      drag = { x: e.clientX, y: e.clientY, pan: e.shiftKey || e.button !== 0 };
      canvas.setPointerCapture(e.pointerId);
      canvas.focus({ preventScroll: true });
    });
    canvas.addEventListener("pointermove", (e) => {
      if (!drag) return;
      const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
      drag.x = e.clientX; drag.y = e.clientY;
      const cam = S.cam;
      if (drag.pan) {
        const { r, u } = axes(cam), k = (2 * cam.half) / layout()[0].h;
        for (let i = 0; i < 3; i++) cam.target[i] += (-dx * r[i] + dy * u[i]) * k;
      } else {
        cam.yaw -= dx * 0.4;
        cam.pitch = Math.max(-90, Math.min(90, cam.pitch + dy * 0.4));
      }
      moved();
    });
    const end = () => { drag = null; };
    canvas.addEventListener("pointerup", end);
    canvas.addEventListener("pointercancel", end);
    canvas.addEventListener("wheel", (e) => {
      e.preventDefault();
      S.cam.half *= Math.exp(Math.max(-200, Math.min(200, e.deltaY)) * 0.002);
      moved();
    }, { passive: false });
    window.addEventListener("resize", () => { buildLabels(); redraw(); });
    document.addEventListener("keydown", (e) => {
      if (e.ctrlKey || e.metaKey || e.altKey) return;
      const tag = (e.target.tagName || "").toLowerCase();
      if (tag === "select" || (tag === "input" && e.target.type !== "checkbox" && e.target.type !== "range")) return;
      const k = e.key;
      let done = true;
      if (k >= "1" && k <= String(MODES.length)) setColoring(MODES[Number(k) - 1]);
      else if (k === " ") nextColoring();
      else if (k === "c" || k === "C") cycleClass(+1);
      else if (k === "x" || k === "X") cycleClass(-1);
      else if (k === "a" || k === "A") setIsolate(null);
      else if (k === "h" || k === "H") setCeiling(!S.hideCeiling);
      else if (k === "+" || k === "=") setPointSize(S.pointSize + 1);
      else if (k === "-" || k === "_") setPointSize(S.pointSize - 1);
      else if (k === "v" || k === "V") setView(VIEWS[(VIEWS.indexOf(S.view) + 1) % VIEWS.length]);
      else if (k === "r" || k === "R") setView(S.view);
      else if (k === "s" || k === "S") screenshot();
      else if (k === "i" || k === "I") $("help").hidden = !$("help").hidden;
      else if (k === "Escape") $("help").hidden = true;
      else done = false;
      if (done) e.preventDefault();
    });
  }

  function fail(text) {
    API.error = text;
    document.body.dataset.error = text;
    const m = $("msg");
    m.hidden = false;
    m.textContent = text;
    $("status").textContent = "error";
  }

  async function main() {
    try {
      const blob = await loadBlob();
      initGL(blob);
      uploadClasses();
      buildUI();
      buildLabels();
      S.cam = presetCamera(S.view);
      bindInput();
      sync();
    } catch (err) {
      fail(String(err && err.message ? err.message : err));
    }
  }
  main();
})();

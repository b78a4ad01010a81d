// beamedge live page: no dependencies, canvas plots, fed by server-sent events
// from /events (a few updates a second at most, whatever the frame rate).
'use strict';
(function () {
  const $ = (id) => document.getElementById(id);
  const body = document.body;
  const RATE_KEYS = [
    ['frames_in', 'in', '#4fb3ff'],
    ['kept', 'kept', '#5fd38d'],
    ['rejected', 'rejected', '#8a96a3'],
    ['dropped', 'dropped', '#ffb347'],
    ['published', 'published', '#c792ea'],
  ];
  const HISTORY = 300;
  /** {t, rates: {key: per second}} per stats interval, derived from consecutive totals. */
  const rates = [];
  let lastStats = null;

  function bump(counter, what) {
    body.dataset[counter] = String(Number(body.dataset[counter] || 0) + 1);
    document.dispatchEvent(new CustomEvent('beamedge:drawn', { detail: what }));
  }

  function fmt(x, digits) {
    if (x === null || x === undefined || Number.isNaN(x)) return '-';
    return typeof x === 'number' ? x.toFixed(digits === undefined ? 0 : digits) : String(x);
  }

  // ---- status, figures and rates
  function addStats(s) {
    if (!s || (lastStats && s.time === lastStats.time)) return;
    if (lastStats) {
      const dt = (Date.parse(s.time) - Date.parse(lastStats.time)) / 1000;
      if (dt > 0) {
        const r = {};
        for (const [k] of RATE_KEYS) r[k] = Math.max(0, (s.totals[k] - lastStats.totals[k]) / dt);
        rates.push({ t: Date.parse(s.time), r });
        if (rates.length > HISTORY) rates.shift();
      }
    }
    lastStats = s;
    $('p50').textContent = s.latency_ms.p50 === null ? '-' : fmt(s.latency_ms.p50, 1) + ' ms';
    $('p99').textContent = s.latency_ms.p99 === null ? '-' : fmt(s.latency_ms.p99, 1) + ' ms';
    drawRates();
  }

  function showStatus(st) {
    if (!st) return;
    $('instance').textContent = st.instance;
    const state = $('state');
    state.textContent = st.state;
    state.className = 'pill ' + (st.state === 'running' ? 'running' : 'down');
    $('epoch').textContent = st.epoch;
    $('calibration').textContent = st.calibration || 'none';
    $('uptime').textContent = fmt(st.uptime_s) + ' s';
    $('mqtt').textContent = st.mqtt ? (st.mqtt.connected ? 'connected' : 'disconnected') : '-';
    const t = st.totals || {};
    $('t-in').textContent = fmt(t.frames_in);
    $('t-kept').textContent = fmt(t.kept);
    $('t-rejected').textContent = fmt(t.rejected);
    $('t-dropped').textContent = fmt(t.dropped);
    $('t-errored').textContent = fmt(t.errored);
    $('t-published').textContent = fmt(t.published);
    $('t-undeliverable').textContent = fmt(t.undeliverable);
    const judged = (t.kept || 0) + (t.rejected || 0);
    const hr = Object.values(st.hit_rates || {});
    const hits = hr.reduce((a, h) => a + (h.hits || 0), 0);
    const frames = hr.reduce((a, h) => a + (h.frames || 0), 0);
    $('hit').textContent = frames ? fmt((100 * hits) / frames, 1) + ' %' : judged ? fmt((100 * (t.kept || 0)) / judged, 1) + ' % kept' : '-';
    const q = st.queues || {};
    $('fill').textContent = q.slots ? `${q.slots - q.free_slots} / ${q.slots}` : '-';
    $('mqttq').textContent = fmt(q.mqtt_queue) + (q.mqtt_spooled ? ` (${q.mqtt_spooled} spooled)` : '');
    bump('statusUpdates', 'status');
  }

  function addEvents(list) {
    const ol = $('events');
    for (const e of list || []) {
      const li = document.createElement('li');
      li.className = e.level;
      li.textContent = `${e.time.slice(11, 19)} ${e.kind}: ${e.message}`;
      ol.insertBefore(li, ol.firstChild);
    }
    while (ol.children.length > 50) ol.removeChild(ol.lastChild);
  }

  // ---- plots
  function axes(ctx, w, h, pad, xr, yr, xlabel, ylabel, ylog) {
    ctx.strokeStyle = '#3a444f';
    ctx.fillStyle = '#8a96a3';
    ctx.font = '11px sans-serif';
    ctx.strokeRect(pad.l, pad.t, w - pad.l - pad.r, h - pad.t - pad.b);
    for (let i = 0; i <= 4; i++) {
      const x = xr[0] + ((xr[1] - xr[0]) * i) / 4;
      ctx.fillText(x.toPrecision(3), pad.l + ((w - pad.l - pad.r) * i) / 4 - 10, h - pad.b + 14);
      const y = yr[0] + ((yr[1] - yr[0]) * i) / 4;
      const label = ylog ? Math.pow(10, y).toPrecision(2) : y.toPrecision(3);
      ctx.fillText(label, 2, h - pad.b - ((h - pad.t - pad.b) * i) / 4 + 4);
    }
    ctx.fillText(xlabel, w / 2 - 20, h - 2);
    ctx.fillText(ylabel, pad.l + 4, pad.t + 12);
  }

  function drawProfile(p) {
    const c = $('profile');
    const ctx = c.getContext('2d');
    const w = c.width, h = c.height, pad = { l: 56, r: 10, t: 10, b: 30 };
    ctx.clearRect(0, 0, w, h);
    const pts = [];
    for (let i = 0; i < p.radial.length; i++) {
      const y = p.intensity[i];
      if (y === null || y <= 0) continue;
      const s = p.sigma ? p.sigma[i] || 0 : 0;
      pts.push([p.radial[i], y, s]);
    }
    if (pts.length < 2) return;
    const ys = pts.map((q) => q[1]);
    const ylog = Math.max(...ys) / Math.max(1e-12, Math.min(...ys)) > 100;
    const tf = (v) => (ylog ? Math.log10(Math.max(v, 1e-12)) : v);
    const xr = [pts[0][0], pts[pts.length - 1][0]];
    const lo = Math.min(...pts.map((q) => tf(Math.max(q[1] - q[2], q[1] / 10))));
    const hi = Math.max(...pts.map((q) => tf(q[1] + q[2])));
    const yr = [lo, hi > lo ? hi : lo + 1];
    const X = (x) => pad.l + ((x - xr[0]) / (xr[1] - xr[0] || 1)) * (w - pad.l - pad.r);
    const Y = (y) => h - pad.b - ((tf(y) - yr[0]) / (yr[1] - yr[0])) * (h - pad.t - pad.b);
    axes(ctx, w, h, pad, xr, yr, p.unit || 'radial', 'I', ylog);
    // sigma band
    ctx.fillStyle = 'rgba(79,179,255,0.25)';
    ctx.beginPath();
    pts.forEach((q, i) => (i ? ctx.lineTo : ctx.moveTo).call(ctx, X(q[0]), Y(q[1] + q[2])));
    for (let i = pts.length - 1; i >= 0; i--) ctx.lineTo(X(pts[i][0]), Y(Math.max(pts[i][1] - pts[i][2], pts[i][1] / 10)));
    ctx.closePath();
    ctx.fill();
    ctx.strokeStyle = '#4fb3ff';
    ctx.lineWidth = 1.2;
    ctx.beginPath();
    pts.forEach((q, i) => (i ? ctx.lineTo : ctx.moveTo).call(ctx, X(q[0]), Y(q[1])));
    ctx.stroke();
    $('profile-label').textContent = `series ${p.series} frame ${p.frame} · ${p.reason || p.decision}${p.spots !== null ? ' · ' + p.spots + ' spots' : ''}`;
    body.dataset.profileFrame = String(p.frame);
    bump('profileDraws', 'profile');
  }

  // A perceptual dark-to-bright map (approximately viridis) for 1..255; 0 is masked.
  const STOPS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
  const LUT = new Uint8ClampedArray(256 * 3);
  for (let v = 1; v < 256; v++) {
    const x = ((v - 1) / 254) * (STOPS.length - 1);
    const i = Math.min(STOPS.length - 2, Math.floor(x));
    const f = x - i;
    for (let k = 0; k < 3; k++) LUT[v * 3 + k] = STOPS[i][k] + (STOPS[i + 1][k] - STOPS[i][k]) * f;
  }
  LUT[0] = 58; LUT[1] = 31; LUT[2] = 77;

  function drawPreview(p) {
    const c = $('preview');
    if (c.width !== p.width || c.height !== p.height) {
      c.width = p.width;
      c.height = p.height;
    }
    const ctx = c.getContext('2d');
    const bin = atob(p.image);
    const img = ctx.createImageData(p.width, p.height);
    for (let i = 0; i < bin.length; i++) {
      const v = bin.charCodeAt(i);
      img.data[i * 4] = LUT[v * 3];
      img.data[i * 4 + 1] = LUT[v * 3 + 1];
      img.data[i * 4 + 2] = LUT[v * 3 + 2];
      img.data[i * 4 + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
    if (p.spots) {
      ctx.strokeStyle = '#00ff66';
      ctx.lineWidth = 1;
      for (let i = 0; i < p.spots.fs.length; i++) {
        ctx.beginPath();
        ctx.arc(p.spots.fs[i] / p.binning, p.spots.ss[i] / p.binning, 4, 0, 2 * Math.PI);
        ctx.stroke();
      }
    }
    $('preview-label').textContent = `series ${p.series} frame ${p.frame} · 1:${p.binning} · log10 ${p.log10Min.toFixed(1)}..${p.log10Max.toFixed(1)}${p.spot_count !== null ? ' · ' + p.spot_count + ' spots' : ''}`;
    body.dataset.previewFrame = String(p.frame);
    body.dataset.previewSpots = String(p.spots ? p.spots.fs.length : 0);
    bump('previewDraws', 'preview');
  }

  function drawRates() {
    const c = $('rates');
    const ctx = c.getContext('2d');
    const w = c.width, h = c.height, pad = { l: 44, r: 10, t: 10, b: 30 };
    ctx.clearRect(0, 0, w, h);
    if (rates.length < 2) return;
    const t0 = rates[0].t, t1 = rates[rates.length - 1].t;
    let hi = 1;
    for (const s of rates) for (const [k] of RATE_KEYS) hi = Math.max(hi, s.r[k]);
    axes(ctx, w, h, pad, [(t0 - t1) / 1000, 0], [0, hi * 1.1], 'seconds', '/s', false);
    const X = (t) => pad.l + ((t - t0) / (t1 - t0 || 1)) * (w - pad.l - pad.r);
    const Y = (v) => h - pad.b - (v / (hi * 1.1)) * (h - pad.t - pad.b);
    for (const [k, , colour] of RATE_KEYS) {
      ctx.strokeStyle = colour;
      ctx.beginPath();
      rates.forEach((s, i) => (i ? ctx.lineTo : ctx.moveTo).call(ctx, X(s.t), Y(s.r[k])));
      ctx.stroke();
    }
    const last = rates[rates.length - 1].r;
    $('rates-legend').innerHTML = RATE_KEYS.map(([k, label, colour]) => `<span style="color:${colour}">■</span> ${label} ${last[k].toFixed(1)}`).join(' &nbsp; ');
  }

  // ---- the feed
  const es = new EventSource('events');
  es.addEventListener('hello', (m) => {
    const d = JSON.parse(m.data);
    showStatus(d.status);
    for (const s of d.history) addStats(s);
    addEvents(d.events);
  });
  es.addEventListener('status', (m) => {
    const d = JSON.parse(m.data);
    showStatus(d.status);
    addStats(d.stats);
    addEvents(d.events);
  });
  es.addEventListener('profile', (m) => drawProfile(JSON.parse(m.data)));
  es.addEventListener('preview', (m) => drawPreview(JSON.parse(m.data)));
  es.onerror = () => {
    const state = $('state');
    state.textContent = 'disconnected (retrying)';
    state.className = 'pill down';
  };
})();

// faultline report.html: draws the run's timeline on one canvas from the data embedded in
// the page (#fl-data: {data, records}). Lanes per node coloured by role, fault bands,
// detection marks, election arrows, step figures and client acknowledgements share one
// time axis; wheel zooms, drag pans, double-click resets, hover shows the record's line.
"use strict";
(function () {
  var T_START = performance.now();
  var root = document.documentElement;
  var payload = JSON.parse(document.getElementById("fl-data").textContent);
  var D = payload.data, R = payload.records;
  var COL = {
    follower: "#b9cde3", candidate: "#f2b134", leader: "#1f9d55", down: "#30343a", paused: "#8e6cc9",
    kill: "#d32f2f", stop: "#d32f2f", pause: "#6a45b0", partition: "#c2185b", cut: "#1565c0",
    isolate: "#e65100", link: "#8d6e00", forge: "#ad1457", vote: "#7b3fb5", leader_msg: "#1f7a44", msg: "#37617f",
    ack: "#1e6fc0", retry: "#ef8a00", fail: "#d32f2f", text: "#1d232b", muted: "#5d6875", grid: "#e7ebef"
  };
  var LEFT = 64, RIGHT = 14, AXIS = 22, TOP_LABELS = 34, LANE = 28, LANE_GAP = 6;
  var STEP_LINE = 15, ACK_H = 56, LAT_H = 84, GAP = 14;
  var nodes = D.nodes;
  var laneIndex = {};
  nodes.forEach(function (n, i) { laneIndex[n] = i; });

  // Per-lane record indexes (node events), for ticks and hover.
  var laneRecs = nodes.map(function () { return []; });
  var laneTimes = nodes.map(function () { return []; });
  for (var i = 0; i < R.length; i++) {
    var r = R[i];
    if (r && r.src === "node" && laneIndex[r.node] !== undefined && typeof r.ts_ms === "number") {
      laneRecs[laneIndex[r.node]].push(i);
    }
  }
  laneRecs.forEach(function (list, li) {
    list.sort(function (a, b) { return R[a].ts_ms - R[b].ts_ms; });
    laneTimes[li] = list.map(function (k) { return R[k].ts_ms - D.t0; });
  });
  var ackTimes = D.client.acks.map(function (a) { return a[0]; });
  var figured = D.steps.filter(function (s) { return s.figure_ms != null && s.from != null; });

  var canvas = document.getElementById("chart"), ctx = canvas.getContext("2d");
  var tip = document.getElementById("tip"), picked = document.getElementById("picked");
  var full = [0 - Math.max(50, D.span * 0.01), D.span + Math.max(50, D.span * 0.01)];
  var view = full.slice();
  var highlight = null;
  var W = 0, H = 0;
  var yLanes = AXIS + TOP_LABELS;
  var yLanesEnd = yLanes + nodes.length * (LANE + LANE_GAP);
  var ySteps = yLanesEnd + GAP;
  var yStepsEnd = ySteps + STEP_LINE * (1 + figured.length);
  var yAck = yStepsEnd + GAP + 12;
  var yLat = yAck + ACK_H + GAP + 12;
  var yEnd = yLat + LAT_H + 20;

  function laneY(n) { return yLanes + laneIndex[n] * (LANE + LANE_GAP); }
  function x(t) { return LEFT + (t - view[0]) / (view[1] - view[0]) * (W - LEFT - RIGHT); }
  function tAt(px) { return view[0] + (px - LEFT) / (W - LEFT - RIGHT) * (view[1] - view[0]); }
  function lowerBound(arr, v) { var lo = 0, hi = arr.length; while (lo < hi) { var m = (lo + hi) >> 1; if (arr[m] < v) lo = m + 1; else hi = m; } return lo; }
  function fmtMs(ms) { return ms >= 10000 ? (ms / 1000).toFixed(1) + " s" : Math.round(ms) + " ms"; }
  function fmtT(t) { return "+" + (t / 1000).toFixed(3) + " s"; }
  function clock(t) { return new Date(D.t0 + t).toISOString().replace("T", " ").replace("Z", " UTC"); }
  function esc(s) { return String(s).replace(/[&<>"]/g, function (c) { return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]; }); }
  function bandColour(kind) { return COL[kind] || COL.link; }
  function visible(a, b) { return b >= view[0] && a <= view[1]; }

  var hits = [];
  function hit(x0, y0, x1, y1, rec, text, prio) {
    hits.push({ x0: Math.min(x0, x1) - 2, y0: Math.min(y0, y1) - 2, x1: Math.max(x0, x1) + 2, y1: Math.max(y0, y1) + 2, rec: rec, text: text, prio: prio || 1 });
  }

  function niceStep(raw) {
    var p = Math.pow(10, Math.floor(Math.log10(Math.max(raw, 1e-3))));
    var f = raw / p;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
  }

  function resize() {
    var dpr = window.devicePixelRatio || 1;
    W = canvas.parentElement.clientWidth || 1200;
    H = yEnd;
    canvas.width = Math.round(W * dpr);
    canvas.height = Math.round(H * dpr);
    canvas.style.height = H + "px";
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    draw();
  }

  function text(s, px, py, colour, font, align) {
    ctx.fillStyle = colour || COL.text;
    ctx.font = font || "11px system-ui, sans-serif";
    ctx.textAlign = align || "left";
    ctx.fillText(s, px, py);
  }

  function arrow(x0, y0, x1, y1, colour, width) {
    ctx.strokeStyle = colour; ctx.fillStyle = colour; ctx.lineWidth = width || 1.4;
    ctx.beginPath(); ctx.moveTo(x0, y0); ctx.lineTo(x1, y1); ctx.stroke();
    var a = Math.atan2(y1 - y0, x1 - x0), s = 6;
    ctx.beginPath(); ctx.moveTo(x1, y1);
    ctx.lineTo(x1 - s * Math.cos(a - 0.45), y1 - s * Math.sin(a - 0.45));
    ctx.lineTo(x1 - s * Math.cos(a + 0.45), y1 - s * Math.sin(a + 0.45));
    ctx.closePath(); ctx.fill();
  }

  function hatch(x0, y0, w, h, colour) {
    ctx.save(); ctx.beginPath(); ctx.rect(x0, y0, w, h); ctx.clip();
    ctx.strokeStyle = colour; ctx.lineWidth = 1;
    for (var k = -h; k < w; k += 6) { ctx.beginPath(); ctx.moveTo(x0 + k, y0 + h); ctx.lineTo(x0 + k + h, y0); ctx.stroke(); }
    ctx.restore();
  }

  function drawAxis() {
    var span = view[1] - view[0];
    var step = niceStep(span / Math.max(4, (W - LEFT) / 110));
    ctx.strokeStyle = COL.grid; ctx.lineWidth = 1;
    for (var t = Math.ceil(view[0] / step) * step; t <= view[1]; t += step) {
      var px = Math.round(x(t)) + 0.5;
      ctx.beginPath(); ctx.moveTo(px, AXIS - 4); ctx.lineTo(px, yEnd - 16); ctx.stroke();
      var label = step >= 1000 ? (t / 1000).toFixed(step >= 10000 ? 0 : 1) + " s" : (t / 1000).toFixed(step >= 100 ? 1 : step >= 10 ? 2 : 3) + " s";
      text(label, px, AXIS - 8, COL.muted, "11px system-ui, sans-serif", "center");
    }
  }

  function drawLanes() {
    D.lanes.forEach(function (lane) {
      var y0 = laneY(lane.node);
      text("n" + lane.node, 8, y0 + LANE / 2 + 5, COL.text, "bold 14px system-ui, sans-serif");
      ctx.fillStyle = "#f3f5f7"; ctx.fillRect(LEFT, y0, W - LEFT - RIGHT, LANE);
      var lastLabel = -1e9, prevEpoch = null;
      lane.segs.forEach(function (sg) {
        var epochChanged = sg.epoch !== prevEpoch && sg.state !== "down";
        if (sg.state !== "down") prevEpoch = sg.epoch;
        if (!visible(sg.a, sg.b)) return;
        var x0 = Math.max(LEFT, x(sg.a)), x1 = Math.min(W - RIGHT, x(sg.b));
        var w = Math.max(1, x1 - x0);
        ctx.fillStyle = COL[sg.state] || "#ccc";
        ctx.fillRect(x0, y0 + 3, w, LANE - 6);
        if (sg.state === "paused") hatch(x0, y0 + 3, w, LANE - 6, "rgba(255,255,255,0.45)");
        if (sg.state === "down") hatch(x0, y0 + 3, w, LANE - 6, "rgba(255,255,255,0.18)");
        var light = sg.state === "follower" || sg.state === "candidate";
        var word = sg.state === "down" ? "down" : sg.state + " e" + sg.epoch;
        ctx.font = "bold 11px system-ui, sans-serif";
        if (w > ctx.measureText(word).width + 8) {
          text(word, x0 + 4, y0 + LANE / 2 + 4, light ? COL.text : "#fff", "bold 11px system-ui, sans-serif");
          lastLabel = x0 + ctx.measureText(word).width + 4;
        } else if (epochChanged && x0 - lastLabel > 16) {
          text("e" + sg.epoch, x0 + 2, y0 - 1, COL.muted, "10px system-ui, sans-serif");
          lastLabel = x0 + 14;
        }
        hit(x0, y0 + 3, x0 + w, y0 + LANE - 3, sg.rec, "n" + lane.node + " " + word + " from " + fmtT(sg.a) + " for " + fmtMs(sg.b - sg.a), 0);
      });
      // A tick per event of this node (one per pixel column), for hover.
      var li = laneIndex[lane.node], times = laneTimes[li];
      var k0 = lowerBound(times, view[0]), lastPx = -1;
      ctx.fillStyle = "rgba(20,30,40,0.45)";
      for (var k = k0; k < times.length && times[k] <= view[1]; k++) {
        var px = Math.round(x(times[k]));
        if (px === lastPx) continue;
        lastPx = px;
        ctx.fillRect(px, y0 + LANE - 3, 1, 3);
      }
    });
  }

  function drawBands() {
    var labelRow = 0, lastLabelEnd = [-1e9, -1e9];
    D.bands.forEach(function (b) {
      if (!visible(b.a, b.b)) return;
      var colour = bandColour(b.kind);
      var x0 = Math.max(LEFT, x(b.a)), x1 = Math.min(W - RIGHT, x(b.b)), w = Math.max(2, x1 - x0);
      var ys = b.nodes.filter(function (n) { return laneIndex[n] !== undefined; }).map(laneY);
      var node = b.kind === "kill" || b.kind === "stop" || b.kind === "pause";
      ys.forEach(function (y0, k) {
        var n = b.nodes[k];
        var tint = colour;
        if (b.kind === "partition") {
          var g = 0;
          b.groups.forEach(function (grp, gi) { if (grp.indexOf(n) >= 0) g = gi; });
          tint = ["#c2185b", "#00838f", "#6d4c41", "#5e35b1"][g % 4];
          ctx.globalAlpha = 0.22; ctx.fillStyle = tint; ctx.fillRect(x0, y0 - 2, w, LANE + 4); ctx.globalAlpha = 1;
          text("group " + (g + 1), x0 + 3, y0 + LANE + 2, tint, "bold 9px system-ui, sans-serif");
        } else if (!node) {
          ctx.globalAlpha = 0.18; ctx.fillStyle = tint; ctx.fillRect(x0, y0 - 2, w, LANE + 4); ctx.globalAlpha = 1;
        }
        ctx.strokeStyle = tint; ctx.lineWidth = node ? 2 : 1.2;
        ctx.strokeRect(x0 + 0.5, y0 - 1.5, w - 1, LANE + 3);
      });
      // One-way network faults: arrows from each sender to each receiver, crossed out.
      if (b.to && b.to.length && b.from && b.from.length) {
        var every = Math.max(90, w / 4);
        for (var ax = x0 + 18; ax < x0 + w - 6; ax += every) {
          b.from.forEach(function (f) {
            b.to.forEach(function (t) {
              if (laneIndex[f] === undefined || laneIndex[t] === undefined) return;
              var ya = laneY(f) + LANE / 2, yb = laneY(t) + LANE / 2;
              arrow(ax, ya, ax + 14, yb + (yb > ya ? -LANE / 2 + 2 : LANE / 2 - 2), colour, 2);
              var mx = ax + 7, my = (ya + yb) / 2;
              ctx.strokeStyle = colour; ctx.lineWidth = 2;
              ctx.beginPath(); ctx.moveTo(mx - 4, my - 4); ctx.lineTo(mx + 4, my + 4); ctx.moveTo(mx + 4, my - 4); ctx.lineTo(mx - 4, my + 4); ctx.stroke();
            });
          });
          if (w < 200) break;
        }
      }
      // The fault's start: a line through its lanes and its name above them.
      ctx.strokeStyle = colour; ctx.lineWidth = 2;
      var xs = x(b.a);
      if (xs >= LEFT) {
        ctx.beginPath(); ctx.moveTo(xs, AXIS + 2); ctx.lineTo(xs, yLanesEnd); ctx.stroke();
      }
      var label = (node ? b.label.toUpperCase() : b.label) + (b.repaired ? " · " + fmtMs(b.b - b.a) : " · not repaired");
      ctx.font = "bold 12px system-ui, sans-serif";
      var lw = ctx.measureText(label).width;
      var lx = Math.max(LEFT, xs + 3);
      labelRow = lastLabelEnd[0] < lx ? 0 : lastLabelEnd[1] < lx ? 1 : 0;
      lastLabelEnd[labelRow] = lx + lw + 6;
      text(label, lx, AXIS + 12 + labelRow * 14, colour, "bold 12px system-ui, sans-serif");
      hit(lx, AXIS + 2 + labelRow * 14, lx + lw, AXIS + 14 + labelRow * 14, b.rec, label, 3);
      ys.forEach(function (y0) { hit(x0, y0, x0 + Math.min(w, 8), y0 + LANE, b.rec, label, 2); });
      if (b.end_rec != null && x(b.b) <= W - RIGHT) {
        var xe = x(b.b);
        ctx.setLineDash([3, 3]); ctx.lineWidth = 1.5;
        ctx.beginPath(); ctx.moveTo(xe, yLanes - 4); ctx.lineTo(xe, yLanesEnd); ctx.stroke(); ctx.setLineDash([]);
        hit(xe - 3, yLanes, xe + 3, yLanesEnd, b.end_rec, "end of " + b.label, 2);
      }
    });
  }

  function drawWindows() {
    var lastEnd = -1e9;
    D.windows.forEach(function (w) {
      if (!visible(w.a - 20, w.b + 20)) return;
      var x0 = x(w.a), x1 = x(w.b), pad = 3;
      ctx.fillStyle = "rgba(242,177,52,0.16)";
      ctx.fillRect(x0 - pad, yLanes - 4, Math.max(2, x1 - x0) + 2 * pad, yLanesEnd - yLanes);
      var who = w.leaders.length ? "n" + w.leaders.join(" & n") + " elected" : "no leader";
      if (w.leaders.length > 1) who = "SPLIT BRAIN: " + who;
      var label = "election e" + w.epoch + (w.trigger ? " (" + w.trigger + ")" : "") + " → " + who + (w.won_at != null ? " in " + fmtMs(w.won_at - w.a) : "");
      ctx.font = "bold 12px system-ui, sans-serif";
      var lw = ctx.measureText(label).width, lx = Math.max(LEFT, x0);
      if (lx > lastEnd) {
        text(label, lx, AXIS + 28, w.leaders.length > 1 ? COL.fail : "#9a6700", "bold 12px system-ui, sans-serif");
        lastEnd = lx + lw + 8;
        hit(lx, AXIS + 18, lx + lw, AXIS + 30, null, label, 3);
      }
      w.msgs.forEach(function (m) {
        if (laneIndex[m.from] === undefined || laneIndex[m.to] === undefined) return;
        var ya = laneY(m.from) + LANE / 2, yb = laneY(m.to) + LANE / 2;
        var c = m.kind === "vote" ? COL.vote : m.kind === "leader" ? COL.leader_msg : COL.msg;
        var xa = x(m.ta), xb = Math.max(x(m.tb), xa + 1);
        if (ya === yb) { yb += 0.01; }
        arrow(xa, ya + (yb > ya ? LANE / 2 - 3 : -LANE / 2 + 3), xb, yb + (yb > ya ? -LANE / 2 + 3 : LANE / 2 - 3), c, 1.3);
        hit(xa, ya, xb, yb, m.rec, m.kind + " n" + m.from + " → n" + m.to + " (" + fmtT(m.ta) + " → " + fmtT(m.tb) + ")", 4);
      });
      w.points.forEach(function (p) {
        if (laneIndex[p.node] === undefined) return;
        var px = x(p.t), py = laneY(p.node) + LANE / 2;
        ctx.lineWidth = 1.5; ctx.strokeStyle = "#fff";
        if (p.kind === "elected") {
          ctx.fillStyle = w.leaders.length > 1 ? COL.fail : COL.leader;
          star(px, py, 8); ctx.fill(); ctx.stroke();
        } else if (p.kind === "started" || p.kind === "candidate" || p.kind === "ring_maximum") {
          ctx.fillStyle = "#c77700";
          ctx.beginPath();
          if (p.kind === "ring_maximum") { ctx.moveTo(px, py - 6); ctx.lineTo(px + 6, py); ctx.lineTo(px, py + 6); ctx.lineTo(px - 6, py); ctx.closePath(); }
          else ctx.arc(px, py, 4.5, 0, 7);
          ctx.fill(); ctx.stroke();
        } else {
          ctx.fillStyle = p.kind === "vote" ? COL.vote : p.kind === "accepted" ? COL.leader_msg : COL.msg;
          ctx.beginPath(); ctx.arc(px, py, 3, 0, 7); ctx.fill();
        }
        hit(px - 6, py - 6, px + 6, py + 6, p.rec, p.kind + " on n" + p.node + " e" + w.epoch, 5);
      });
    });
  }

  function star(cx, cy, r) {
    ctx.beginPath();
    for (var k = 0; k < 10; k++) {
      var rr = k % 2 ? r * 0.45 : r, a = -Math.PI / 2 + k * Math.PI / 5;
      ctx.lineTo(cx + rr * Math.cos(a), cy + rr * Math.sin(a));
    }
    ctx.closePath();
  }

  function drawMarks() {
    var lastLabel = {};
    D.marks.forEach(function (m) {
      if (m.t < view[0] || m.t > view[1] || laneIndex[m.node] === undefined) return;
      var px = x(m.t), y0 = laneY(m.node), py = y0 + LANE - 2;
      var c = m.kind === "down" ? COL.fail : m.kind === "suspected" ? "#ef8a00" : m.kind === "back" ? COL.leader : "#1565c0";
      ctx.fillStyle = c; ctx.strokeStyle = "#fff"; ctx.lineWidth = 1;
      ctx.beginPath();
      if (m.kind === "back") { ctx.moveTo(px - 5, py); ctx.lineTo(px + 5, py); ctx.lineTo(px, py - 9); }
      else { ctx.moveTo(px - 5, y0 + 3); ctx.lineTo(px + 5, y0 + 3); ctx.lineTo(px, y0 + 12); }
      ctx.closePath();
      if (m.kind === "suspected") { ctx.strokeStyle = c; ctx.lineWidth = 1.5; ctx.stroke(); } else { ctx.fill(); ctx.stroke(); }
      var label = (m.kind === "down" ? "✕" : m.kind === "suspected" ? "?" : m.kind === "back" ? "↑" : "←") + m.peer + (m.silence_ms != null ? " " + m.silence_ms + "ms" : "");
      var desc = "n" + m.node + ": peer " + m.peer + " " + m.kind + (m.silence_ms != null ? " after " + m.silence_ms + " ms of silence" : "");
      var key = m.node;
      if (m.kind !== "suspected" && (lastLabel[key] === undefined || px > lastLabel[key])) {
        ctx.font = "bold 10px system-ui, sans-serif";
        var lw = ctx.measureText(label).width + 4;
        ctx.fillStyle = "rgba(255,255,255,0.85)"; ctx.fillRect(px + 5, y0 + 2, lw, 12);
        text(label, px + 7, y0 + 12, c, "bold 10px system-ui, sans-serif");
        lastLabel[key] = px + 5 + lw + 2;
      }
      hit(px - 6, y0, px + 6, y0 + LANE, m.rec, desc, 6);
    });
  }

  function drawSteps() {
    text("steps", 8, ySteps + 11, COL.muted, "bold 11px system-ui, sans-serif");
    var lastEnd = -1e9;
    D.steps.forEach(function (s) {
      if (s.a == null || s.a < view[0] || s.a > view[1]) return;
      var px = x(s.a);
      ctx.fillStyle = s.status === "failed" ? COL.fail : "#7a8591";
      ctx.fillRect(px, ySteps + 2, 1.5, STEP_LINE - 4);
      var label = s.index + (s.keyword ? " " + s.keyword : "");
      if (px > lastEnd) {
        text(label, px + 3, ySteps + 11, COL.muted, "10px system-ui, sans-serif");
        ctx.font = "10px system-ui, sans-serif";
        lastEnd = px + ctx.measureText(label).width + 8;
      }
      hit(px - 3, ySteps, px + 20, ySteps + STEP_LINE, s.rec, "step " + s.index + " " + s.description + " (" + s.status + ")", 2);
    });
    figured.forEach(function (s, k) {
      var y0 = ySteps + STEP_LINE * (k + 1) + 2;
      var xa = x(s.from), xf = x(s.from + s.figure_ms);
      var failed = s.status === "failed";
      ctx.fillStyle = failed ? "rgba(211,47,47,0.8)" : "rgba(30,111,192,0.75)";
      ctx.fillRect(xa, y0 + 2, Math.max(1.5, xf - xa), STEP_LINE - 6);
      var label = s.index + " " + (s.description || "step") + ": " + s.figure_ms + " ms";
      if (s.deadline_ms != null) {
        var xd = x(s.from + s.deadline_ms);
        ctx.strokeStyle = COL.fail; ctx.lineWidth = 2;
        ctx.beginPath(); ctx.moveTo(xd, y0); ctx.lineTo(xd, y0 + STEP_LINE - 2); ctx.stroke();
        ctx.setLineDash([2, 3]); ctx.lineWidth = 1;
        ctx.beginPath(); ctx.moveTo(xf, y0 + STEP_LINE / 2); ctx.lineTo(xd, y0 + STEP_LINE / 2); ctx.stroke(); ctx.setLineDash([]);
        label += " / deadline " + s.deadline_ms + " ms (" + (s.headroom_ms >= 0 ? "+" : "") + s.headroom_ms + " ms)";
        xf = Math.max(xf, xd);
      }
      text(label, Math.max(LEFT, xf) + 4, y0 + STEP_LINE - 4, failed ? COL.fail : COL.text, "11px system-ui, sans-serif");
      hit(xa, y0, Math.max(xf, xa + 4), y0 + STEP_LINE, s.rec, label, 2);
    });
  }

  function drawClient() {
    var c = D.client;
    text("acks", 8, yAck + 12, COL.muted, "bold 11px system-ui, sans-serif");
    text("latency", 8, yLat + 12, COL.muted, "bold 11px system-ui, sans-serif");
    ctx.fillStyle = "#f7f9fa";
    ctx.fillRect(LEFT, yAck, W - LEFT - RIGHT, ACK_H);
    ctx.fillRect(LEFT, yLat, W - LEFT - RIGHT, LAT_H);
    var bin = niceStep((view[1] - view[0]) / 110);
    var b0 = Math.floor(view[0] / bin);
    var counts = {}, maxc = 1;
    for (var k = lowerBound(ackTimes, view[0]); k < ackTimes.length && ackTimes[k] <= view[1]; k++) {
      var bi = Math.floor(ackTimes[k] / bin);
      counts[bi] = (counts[bi] || 0) + 1;
      if (counts[bi] > maxc) maxc = counts[bi];
    }
    text("acknowledged messages per " + fmtMs(bin) + " (max " + maxc + ")", LEFT + 4, yAck - 3, COL.muted, "11px system-ui, sans-serif");
    // Unavailability: no acknowledgement while messages were waiting.
    c.gaps.forEach(function (g) {
      if (!visible(g[0], g[1])) return;
      var x0 = Math.max(LEFT, x(g[0])), x1 = Math.min(W - RIGHT, x(g[1]));
      ctx.fillStyle = "rgba(211,47,47,0.12)";
      ctx.fillRect(x0, yAck, x1 - x0, yLat + LAT_H - yAck);
      hatch(x0, yAck, x1 - x0, ACK_H, "rgba(211,47,47,0.35)");
      text("no acks " + fmtMs(g[1] - g[0]), x0 + 3, yAck + ACK_H / 2 + 4, COL.fail, "bold 12px system-ui, sans-serif");
      hit(x0, yAck, x1, yAck + ACK_H, null, "no acknowledgement for " + fmtMs(g[1] - g[0]) + " while messages waited", 1);
    });
    ctx.fillStyle = COL.ack;
    var bw = Math.max(1, x(bin) - x(0) - 1);
    Object.keys(counts).forEach(function (key) {
      var bi = +key, h = counts[bi] / maxc * (ACK_H - 4);
      ctx.fillRect(x(bi * bin), yAck + ACK_H - h, bw, h);
    });
    // Latency scatter, log scale from 1 ms to the largest visible latency.
    var maxLat = 10;
    var k0 = lowerBound(ackTimes, view[0]);
    for (k = k0; k < ackTimes.length && ackTimes[k] <= view[1]; k++) maxLat = Math.max(maxLat, c.acks[k][1]);
    var top = Math.log10(maxLat * 1.2);
    function ly(ms) { return yLat + LAT_H - 3 - Math.log10(Math.max(1, ms)) / top * (LAT_H - 14); }
    [1, 10, 100, 1000, 10000].forEach(function (v) {
      if (v > maxLat * 1.2) return;
      ctx.strokeStyle = COL.grid; ctx.lineWidth = 1;
      ctx.beginPath(); ctx.moveTo(LEFT, ly(v)); ctx.lineTo(W - RIGHT, ly(v)); ctx.stroke();
      text(fmtMs(v), LEFT - 4, ly(v) + 4, COL.muted, "10px system-ui, sans-serif", "right");
    });
    text("ack latency since the first attempt (log scale; orange: retried)", LEFT + 4, yLat - 3, COL.muted, "11px system-ui, sans-serif");
    var lastPx = -1, lastPy = -1;
    for (k = k0; k < ackTimes.length && ackTimes[k] <= view[1]; k++) {
      var a = c.acks[k], px = Math.round(x(a[0])), py = Math.round(ly(a[1]));
      if (px === lastPx && py === lastPy) continue;
      lastPx = px; lastPy = py;
      ctx.fillStyle = a[2] > 1 ? COL.retry : COL.ack;
      ctx.fillRect(px - 1.5, py - 1.5, 3, 3);
    }
    c.retries.forEach(function (rt) {
      if (rt[0] < view[0] || rt[0] > view[1]) return;
      ctx.fillStyle = COL.retry; ctx.fillRect(x(rt[0]) - 0.5, yLat + 1, 1.5, 7);
      hit(x(rt[0]) - 3, yLat, x(rt[0]) + 3, yLat + 9, rt[1], "retry", 3);
    });
    c.fails.forEach(function (f) {
      if (f[0] < view[0] || f[0] > view[1]) return;
      var px = x(f[0]), py = yLat + 6;
      ctx.strokeStyle = COL.fail; ctx.lineWidth = 1.8;
      ctx.beginPath(); ctx.moveTo(px - 4, py - 4); ctx.lineTo(px + 4, py + 4); ctx.moveTo(px + 4, py - 4); ctx.lineTo(px - 4, py + 4); ctx.stroke();
      hit(px - 5, py - 5, px + 5, py + 5, f[1], "failed attempt", 4);
    });
    if (!c.acks.length) text("no client acknowledgements in this run", LEFT + 8, yAck + ACK_H / 2, COL.muted);
  }

  function drawHighlight() {
    if (highlight == null || !R[highlight]) return;
    var t = R[highlight].ts_ms - D.t0;
    if (t < view[0] || t > view[1]) return;
    var px = x(t);
    ctx.strokeStyle = "#ff1744"; ctx.lineWidth = 2;
    ctx.beginPath(); ctx.moveTo(px, AXIS); ctx.lineTo(px, yEnd - 16); ctx.stroke();
    var n = R[highlight].node;
    if (laneIndex[n] !== undefined) { ctx.strokeRect(px - 7, laneY(n) - 3, 14, LANE + 6); }
  }

  function draw() {
    hits = [];
    ctx.clearRect(0, 0, W, H);
    drawAxis();
    drawLanes();
    drawWindows();
    drawBands();
    drawMarks();
    drawSteps();
    drawClient();
    drawHighlight();
    document.getElementById("view").textContent = fmtT(Math.max(0, view[0])) + " … " + fmtT(view[1]) + " (" + fmtMs(view[1] - view[0]) + " shown)";
  }

  // ---- interaction ----
  var frame = null;
  function redraw() { if (!frame) frame = requestAnimationFrame(function () { frame = null; draw(); }); }
  function setView(a, b) {
    var minSpan = 2;
    if (b - a < minSpan) { var m = (a + b) / 2; a = m - minSpan / 2; b = m + minSpan / 2; }
    view = [a, b]; redraw();
  }
  canvas.addEventListener("wheel", function (e) {
    e.preventDefault();
    var t = tAt(e.offsetX), f = Math.pow(1.0015, e.deltaY);
    if (e.offsetX < LEFT) t = (view[0] + view[1]) / 2;
    setView(t - (t - view[0]) * f, t + (view[1] - t) * f);
  }, { passive: false });
  var drag = null;
  canvas.addEventListener("pointerdown", function (e) { drag = { x: e.clientX, v: view.slice(), moved: false }; canvas.setPointerCapture(e.pointerId); });
  canvas.addEventListener("pointerup", function (e) {
    if (drag && !drag.moved) pick(e.offsetX, e.offsetY);
    drag = null;
  });
  canvas.addEventListener("pointermove", function (e) {
    if (drag) {
      var dx = e.clientX - drag.x;
      if (Math.abs(dx) > 3) drag.moved = true;
      if (drag.moved) {
        var dt = dx / (W - LEFT - RIGHT) * (drag.v[1] - drag.v[0]);
        setView(drag.v[0] - dt, drag.v[1] - dt);
        tip.style.display = "none";
        return;
      }
    }
    hover(e.offsetX, e.offsetY);
  });
  canvas.addEventListener("pointerleave", function () { tip.style.display = "none"; });
  canvas.addEventListener("dblclick", function () { setView(full[0], full[1]); });
  window.addEventListener("keydown", function (e) {
    var span = view[1] - view[0], m = (view[0] + view[1]) / 2;
    if (e.key === "+" || e.key === "=") setView(m - span / 3, m + span / 3);
    else if (e.key === "-") setView(m - span * 0.75, m + span * 0.75);
    else if (e.key === "ArrowLeft") setView(view[0] - span / 5, view[1] - span / 5);
    else if (e.key === "ArrowRight") setView(view[0] + span / 5, view[1] + span / 5);
    else if (e.key === "0") setView(full[0], full[1]);
  });
  window.addEventListener("resize", resize);

  function find(px, py) {
    var best = null;
    hits.forEach(function (h) {
      if (px >= h.x0 && px <= h.x1 && py >= h.y0 && py <= h.y1) {
        if (!best || h.prio > best.prio || (h.prio === best.prio && (h.x1 - h.x0) * (h.y1 - h.y0) < (best.x1 - best.x0) * (best.y1 - best.y0))) best = h;
      }
    });
    // Ticks: the nearest node event on this lane within 4 px.
    if ((!best || best.prio === 0) && py >= yLanes && py < yLanesEnd) {
      var li = Math.floor((py - yLanes) / (LANE + LANE_GAP));
      if (li >= 0 && li < nodes.length) {
        var times = laneTimes[li], t = tAt(px), k = lowerBound(times, t), cand = [];
        if (k < times.length) cand.push(k);
        if (k > 0) cand.push(k - 1);
        cand.forEach(function (c) {
          var d = Math.abs(x(times[c]) - px);
          if (d <= 4 && (!best || best.prio === 0 || d < best.d)) best = { rec: laneRecs[li][c], text: "n" + nodes[li] + " event", prio: 1, d: d };
        });
      }
    }
    if (!best && py >= yLat && py <= yLat + LAT_H) {
      var t2 = tAt(px), k2 = lowerBound(ackTimes, t2);
      [k2, k2 - 1].forEach(function (c) {
        if (c < 0 || c >= ackTimes.length) return;
        var d = Math.abs(x(ackTimes[c]) - px);
        if (d <= 4 && (!best || d < best.d)) {
          var a = D.client.acks[c];
          best = { rec: a[3], text: "acknowledged after " + a[1] + " ms" + (a[2] > 1 ? " (" + a[2] + " attempts)" : ""), prio: 1, d: d };
        }
      });
    }
    return best;
  }
  function recLine(rec) { return rec != null && R[rec] ? JSON.stringify(R[rec]) : ""; }
  function hover(px, py) {
    var h = find(px, py);
    if (!h) { tip.style.display = "none"; return; }
    var t = h.rec != null && R[h.rec] ? R[h.rec].ts_ms - D.t0 : tAt(px);
    tip.innerHTML = "<b>" + esc(h.text) + "</b><br>" + esc(fmtT(t) + " · " + clock(t)) + (h.rec != null ? "<pre>" + esc("line " + (h.rec + 1) + ": " + recLine(h.rec)) + "</pre>" : "");
    tip.style.display = "block";
    var left = px + 14, wrap = canvas.parentElement.clientWidth;
    if (left + 420 > wrap) left = Math.max(0, px - 440);
    tip.style.left = left + "px";
    tip.style.top = (py + 14) + "px";
  }
  function pick(px, py) {
    var h = find(px, py);
    if (h && h.rec != null) showRecord(h.rec, false);
  }
  function showRecord(rec, zoom) {
    if (!R[rec]) return;
    highlight = rec;
    var t = R[rec].ts_ms - D.t0;
    if (zoom) {
      var span = Math.min(view[1] - view[0], Math.max(1500, D.span / 10));
      setView(t - span / 2, t + span / 2);
    } else redraw();
    picked.style.display = "block";
    picked.innerHTML = "<b>record " + (rec + 1) + "</b> · " + esc(fmtT(t) + " · " + clock(t)) + "<pre>" + esc(recLine(rec)) + "</pre>";
  }

  // ---- the HTML around the chart ----
  function toolbar() {
    var bar = document.getElementById("zooms");
    function button(label, a, b) {
      var el = document.createElement("button");
      el.textContent = label;
      el.onclick = function () { setView(a, b); };
      bar.appendChild(el);
    }
    button("whole run", full[0], full[1]);
    D.bands.slice(0, 40).forEach(function (b) { button(b.label, b.a - 400, b.a + Math.max(2500, Math.min(b.b - b.a, 8000)) + 400); });
    D.windows.slice(0, 40).forEach(function (w) { var pad = Math.max(30, (w.b - w.a) * 0.3); button("election e" + w.epoch, w.a - pad, w.b + pad); });
  }

  function tables() {
    var out = [];
    if (D.checks.length) {
      out.push("<h2>Checks</h2><table><tr><th>check</th><th>status</th><th>figure</th><th>deadline</th><th>headroom</th></tr>");
      D.checks.forEach(function (c) {
        out.push("<tr><td>" + esc(c.name) + "</td><td class=" + (c.ok ? "ok" : "bad") + ">" + esc(c.status.replace(/_/g, " ")) + "</td><td>" + esc(c.figure) + "</td><td>" + esc(c.deadline || "") + "</td><td class=num>" + (c.headroom_ms != null ? (c.headroom_ms >= 0 ? "+" : "") + c.headroom_ms + " ms" : "") + "</td></tr>");
        if (c.findings.length) {
          var items = c.findings.map(function (f) {
            var links = f.recs.map(function (rec) {
              var r = R[rec] || {};
              var what = r.src === "node" ? "n" + r.node + " " + r.event : r.src === "client" ? r.user + " " + r.action : r.src;
              return "<a class=rec data-rec=" + rec + ">" + esc(what) + "</a>";
            }).join("");
            return "<li>" + esc(f.text) + links + "</li>";
          });
          out.push("<tr><td></td><td colspan=4><ul class=findings>" + items.join("") + "</ul></td></tr>");
        }
      });
      out.push("</table>");
    }
    if (D.split_brain.length) {
      out.push("<h2 class=bad>Split brain</h2><ul class=findings>");
      D.split_brain.forEach(function (s) {
        out.push("<li>epoch " + s.epoch + ": leaders n" + s.leaders.join(", n") + s.recs.map(function (rec) { return "<a class=rec data-rec=" + rec + ">n" + R[rec].node + " leader_elected</a>"; }).join("") + "</li>");
      });
      out.push("</ul>");
    }
    if (D.steps.length) {
      out.push("<h2>Steps</h2><table><tr><th>#</th><th>step</th><th>status</th><th>at</th><th>figure</th><th>deadline</th><th>headroom</th></tr>");
      D.steps.forEach(function (s) {
        var ok = s.status === "passed" || s.status === "met";
        out.push("<tr><td class=num>" + s.index + "</td><td>" + esc(s.description) + (s.message ? "<br><span class=bad>" + esc(s.message) + "</span>" : "") + "</td><td class=" + (ok ? "ok" : s.status === "failed" ? "bad" : "") + ">" + esc(s.status) + "</td><td>" + (s.rec != null ? "<a class=rec data-rec=" + s.rec + ">" + (s.a != null ? fmtT(s.a) : "") + "</a>" : "") + "</td><td class=num>" + (s.figure_ms != null ? s.figure_ms + " ms" : "") + "</td><td class=num>" + (s.deadline_ms != null ? s.deadline_ms + " ms" : "") + "</td><td class=num>" + (s.headroom_ms != null ? (s.headroom_ms >= 0 ? "+" : "") + s.headroom_ms + " ms" : "") + "</td></tr>");
      });
      out.push("</table>");
    }
    var el = document.getElementById("tables");
    el.innerHTML = out.join("");
    el.addEventListener("click", function (e) {
      var rec = e.target.getAttribute && e.target.getAttribute("data-rec");
      if (rec != null) { showRecord(+rec, true); document.getElementById("toolbar").scrollIntoView(); }
    });
  }

  // One small Lamport diagram per election window: lanes across, the window's time along.
  function windowDiagrams() {
    var box = document.getElementById("windows");
    var shown = D.windows.slice(0, 60);
    if (D.windows.length > shown.length) {
      var more = document.createElement("div");
      more.textContent = (D.windows.length - shown.length) + " more election windows: use the toolbar or zoom the timeline";
      box.appendChild(more);
    }
    shown.forEach(function (w) {
      var div = document.createElement("div");
      div.className = "win";
      var who = w.leaders.length ? "n" + w.leaders.join(" & n") + " elected" : "no leader";
      div.innerHTML = "<div class=t>epoch " + w.epoch + (w.trigger ? " · " + esc(w.trigger) : "") + " · " + (w.leaders.length > 1 ? "<span class=bad>SPLIT BRAIN " + who + "</span>" : who) + (w.won_at != null ? " after " + fmtMs(w.won_at - w.a) : "") + "</div>";
      var cv = document.createElement("canvas");
      var cw = 380, lh = 22, ch = nodes.length * lh + 26;
      var dpr = window.devicePixelRatio || 1;
      cv.width = cw * dpr; cv.height = ch * dpr; cv.style.width = cw + "px"; cv.style.height = ch + "px";
      div.appendChild(cv);
      box.appendChild(div);
      var c = cv.getContext("2d");
      c.setTransform(dpr, 0, 0, dpr, 0, 0);
      var pad = Math.max(2, (w.b - w.a) * 0.08), a = w.a - pad, b = w.b + pad, L = 30, Rr = 12;
      function wx(t) { return L + (t - a) / (b - a) * (cw - L - Rr); }
      function wy(n) { return 8 + laneIndex[n] * lh + lh / 2; }
      c.font = "bold 11px system-ui, sans-serif"; c.fillStyle = COL.text;
      nodes.forEach(function (n) {
        c.fillText("n" + n, 4, wy(n) + 4);
        c.strokeStyle = "#c9d1d9"; c.lineWidth = 1;
        c.beginPath(); c.moveTo(L, wy(n)); c.lineTo(cw - Rr, wy(n)); c.stroke();
      });
      w.msgs.forEach(function (m) {
        if (laneIndex[m.from] === undefined || laneIndex[m.to] === undefined) return;
        var col = m.kind === "vote" ? COL.vote : m.kind === "leader" ? COL.leader_msg : COL.msg;
        var x0 = wx(m.ta), y0 = wy(m.from), x1 = Math.max(wx(m.tb), x0 + 2), y1 = wy(m.to);
        c.strokeStyle = col; c.fillStyle = col; c.lineWidth = 1.3;
        c.beginPath(); c.moveTo(x0, y0); c.lineTo(x1, y1); c.stroke();
        var an = Math.atan2(y1 - y0, x1 - x0);
        c.beginPath(); c.moveTo(x1, y1); c.lineTo(x1 - 6 * Math.cos(an - 0.45), y1 - 6 * Math.sin(an - 0.45)); c.lineTo(x1 - 6 * Math.cos(an + 0.45), y1 - 6 * Math.sin(an + 0.45)); c.closePath(); c.fill();
      });
      w.points.forEach(function (p) {
        if (laneIndex[p.node] === undefined) return;
        var px = wx(p.t), py = wy(p.node);
        if (p.kind === "elected") { c.fillStyle = w.leaders.length > 1 ? COL.fail : COL.leader; c.beginPath(); c.arc(px, py, 6, 0, 7); c.fill(); c.fillStyle = "#fff"; c.font = "bold 9px system-ui"; c.fillText("L", px - 3, py + 3); }
        else if (p.kind === "started" || p.kind === "candidate" || p.kind === "ring_maximum") { c.fillStyle = "#c77700"; c.beginPath(); c.arc(px, py, 4, 0, 7); c.fill(); }
        else { c.fillStyle = COL.muted; c.beginPath(); c.arc(px, py, 2.5, 0, 7); c.fill(); }
      });
      c.fillStyle = COL.muted; c.font = "10px system-ui, sans-serif";
      c.fillText(fmtT(w.a), L, ch - 4);
      c.textAlign = "right"; c.fillText(fmtMs(w.b - w.a) + " · " + w.msgs.length + " messages", cw - Rr, ch - 4); c.textAlign = "left";
      div.onclick = function () { var p2 = Math.max(30, (w.b - w.a) * 0.3); setView(w.a - p2, w.b + p2); document.getElementById("toolbar").scrollIntoView(); };
    });
    if (!D.windows.length) box.textContent = "no election in this history";
  }

  toolbar();
  tables();
  windowDiagrams();
  resize();
  root.setAttribute("data-fl-lanes", String(D.lanes.length));
  root.setAttribute("data-fl-records", String(R.length));
  root.setAttribute("data-fl-render-ms", String(Math.round(performance.now() - T_START)));
  root.setAttribute("data-fl-ready", "1");
})();

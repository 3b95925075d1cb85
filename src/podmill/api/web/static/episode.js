// The episode page: the player drives the transcript and the topic tree, and the text,
// the topics and the chapters drive the player. The page renders one <span class="s">
// per sentence (data-start, data-end, data-w = its first word); the word times are one
// JSON block (#ep-words: d = each word's start in centiseconds after the word before,
// o = where the word begins in its sentence's text). The current word is marked with the CSS Custom
// Highlight API (a Range over the sentence's text, no element per word); a clicked
// word is found from the caret position under the pointer.
(function () {
  "use strict";
  var audio = document.getElementById("ep-audio");
  var text = document.getElementById("ep-text");
  var sentences = text ? Array.prototype.slice.call(text.querySelectorAll("span.s")) : [];
  var starts = sentences.map(function (s) { return parseFloat(s.dataset.start); });
  var firstWord = sentences.map(function (s) { return parseInt(s.dataset.w, 10); });
  var wordsBlock = document.getElementById("ep-words");
  var words = wordsBlock ? JSON.parse(wordsBlock.textContent) : { d: [], o: [] };
  words.t = new Float64Array(words.d.length);  // starts in centiseconds, from the steps
  for (var k = 0, sum = 0; k < words.d.length; k++) { sum += words.d[k]; words.t[k] = sum; }
  var topics = Array.prototype.slice.call(document.querySelectorAll("details.topic")).map(
    function (el) {
      return { el: el, start: parseFloat(el.dataset.start), end: parseFloat(el.dataset.end),
               level: parseInt(el.dataset.level, 10) };
    });
  var chapters = Array.prototype.slice.call(document.querySelectorAll("li.chapter"));
  var permalink = document.getElementById("ep-permalink");
  var findBox = document.getElementById("ep-find");
  var findCount = document.getElementById("ep-find-count");
  var highlights = window.CSS && CSS.highlights && typeof Highlight === "function";
  var current = -1;       // index of the current sentence
  var currentWord = -1;
  var currentTopic = null;
  var currentChapter = null;
  var userScrolledAt = -Infinity;
  var FOLLOW_PAUSE_MS = 4000;  // after the user scrolls, the view stays where they put it

  // the last index i with values[i] <= t (-1 when t is before the first)
  function lastAtOrBefore(values, t, lo, hi) {
    lo = lo || 0; hi = (hi === undefined ? values.length : hi) - 1;
    var found = lo - 1;
    while (lo <= hi) {
      var mid = (lo + hi) >> 1;
      if (values[mid] <= t) { found = mid; lo = mid + 1; } else { hi = mid - 1; }
    }
    return found;
  }

  function wordEnd(i) { return i + 1 < firstWord.length ? firstWord[i + 1] : words.t.length; }

  function markWord(i, t) {
    if (!highlights) return;
    var w = -1;
    if (i >= 0) {
      var from = firstWord[i], to = wordEnd(i);
      w = lastAtOrBefore(words.t, Math.round(t * 100), from, to);
      if (w < from) w = from;
    }
    if (w === currentWord) return;
    currentWord = w;
    if (w < 0) { CSS.highlights.delete("ep-word"); return; }
    var node = sentences[i].firstChild;
    if (!node) return;
    var len = node.length;
    var begin = Math.min(words.o[w], len);
    var end = w + 1 < wordEnd(i) ? Math.min(words.o[w + 1], len) : len;
    var range = document.createRange();
    range.setStart(node, begin);
    range.setEnd(node, end);
    CSS.highlights.set("ep-word", new Highlight(range));
  }

  // Keep the current sentence in view by scrolling the transcript's own box only (the
  // "nearest" way: not at all while it is visible), never the window: a reader further
  // down the page, in the topics, stays where they are. "Visible" is the part of the box
  // on screen below the sticky player.
  var ourScrollAt = -Infinity;
  var player = document.querySelector(".ep-player");
  function follow(el) {
    if (!text || performance.now() - userScrolledAt < FOLLOW_PAUSE_MS) return;
    var box = text.getBoundingClientRect(), at = el.getBoundingClientRect();
    var top = Math.max(box.top, player ? player.getBoundingClientRect().bottom : 0, 0);
    var bottom = Math.min(box.bottom, window.innerHeight);
    if (bottom - top < 40) return;  // the box is off screen: the reader is elsewhere
    if (at.top >= top && at.bottom <= bottom) return;
    ourScrollAt = performance.now();
    text.scrollTop += at.top - (top + (bottom - top) / 3);
  }

  function markTopic(t) {
    var best = null;
    topics.forEach(function (topic) {
      if (topic.start <= t && t < topic.end && (!best || topic.level > best.level)) best = topic;
    });
    var el = best ? best.el : null;
    if (el === currentTopic) return;
    if (currentTopic) { currentTopic.classList.remove("current"); currentTopic.removeAttribute("aria-current"); }
    currentTopic = el;
    if (el) { el.classList.add("current"); el.setAttribute("aria-current", "true"); }
  }

  function markChapter(t) {
    var el = null;
    chapters.forEach(function (c) { if (parseFloat(c.dataset.start) <= t) el = c; });
    if (el === currentChapter) return;
    if (currentChapter) { currentChapter.classList.remove("current"); currentChapter.removeAttribute("aria-current"); }
    currentChapter = el;
    if (el) { el.classList.add("current"); el.setAttribute("aria-current", "true"); }
  }

  function update() {
    if (!audio) return;
    var t = audio.currentTime;
    var i = lastAtOrBefore(starts, t);
    if (i !== current) {
      if (current >= 0) sentences[current].classList.remove("current");
      current = i;
      if (i >= 0) { sentences[i].classList.add("current"); follow(sentences[i]); }
      markTopic(t);
    }
    markWord(i, t);
    markChapter(t);
  }

  var ticking = false;
  function tick() {
    update();
    if (audio && !audio.paused) { window.requestAnimationFrame(tick); } else { ticking = false; }
  }
  function startTicking() { if (!ticking) { ticking = true; window.requestAnimationFrame(tick); } }

  function setPermalink(t) {
    var hash = "#t=" + Math.floor(t);
    if (permalink) permalink.setAttribute("href", hash);
    if (window.location.hash !== hash) history.replaceState(null, "", hash);
  }

  function seek(t, play) {
    if (!audio || !isFinite(t)) return;
    t = Math.max(0, t);
    audio.currentTime = t;
    setPermalink(t);
    update();
    if (play) { var p = audio.play(); if (p && p.catch) p.catch(function () {}); }
  }

  function hashTime() {
    var m = /[#&]t=(\d+(?:\.\d+)?)/.exec(window.location.hash);
    return m ? parseFloat(m[1]) : null;
  }

  // the time of the word under a click in sentence i (its start when no caret is known)
  function clickedTime(i, event) {
    var offset = null;
    if (document.caretPositionFromPoint) {
      var pos = document.caretPositionFromPoint(event.clientX, event.clientY);
      if (pos && pos.offsetNode === sentences[i].firstChild) offset = pos.offset;
    } else if (document.caretRangeFromPoint) {
      var r = document.caretRangeFromPoint(event.clientX, event.clientY);
      if (r && r.startContainer === sentences[i].firstChild) offset = r.startOffset;
    }
    if (offset === null) return starts[i];
    var from = firstWord[i], to = wordEnd(i), w = from;
    for (var k = from; k < to; k++) { if (words.o[k] <= offset) w = k; }
    return w < words.t.length ? words.t[w] / 100 : starts[i];
  }

  if (text) {
    text.addEventListener("click", function (event) {
      var s = event.target.closest ? event.target.closest("span.s") : null;
      if (!s || (window.getSelection && String(window.getSelection()).length > 0)) return;
      var i = sentences.indexOf(s);
      if (i >= 0) seek(clickedTime(i, event), true);
    });
  }

  document.addEventListener("click", function (event) {
    var link = event.target.closest ? event.target.closest("a.seek") : null;
    if (!link || !audio) return;
    event.preventDefault();
    seek(parseFloat(link.dataset.t), true);
  });

  if (text) {
    text.addEventListener("scroll", function () {  // a scroll we did not make is the reader's
      if (performance.now() - ourScrollAt > 150) userScrolledAt = performance.now();
    }, { passive: true });
  }
  ["wheel", "touchmove"].forEach(function (name) {
    window.addEventListener(name, function () { userScrolledAt = performance.now(); }, { passive: true });
  });
  document.addEventListener("keydown", function (event) {
    if (["PageUp", "PageDown", "Home", "End"].indexOf(event.key) >= 0) userScrolledAt = performance.now();
  });

  function typing(el) {
    if (!el) return false;
    var tag = el.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || el.isContentEditable;
  }

  // "/" (focus the find box, marked data-slash-focus) is search.js's, on every page
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    if (!audio || event.target === audio) return;  // the player's own controls keep their keys
    var tag = event.target.tagName;
    if (event.key === " " && tag !== "BUTTON" && tag !== "A" && tag !== "SUMMARY") {
      event.preventDefault();
      if (audio.paused) { var p = audio.play(); if (p && p.catch) p.catch(function () {}); } else { audio.pause(); }
    } else if (event.key === "ArrowRight" || event.key === "ArrowLeft") {
      event.preventDefault();
      var d = event.key === "ArrowRight" ? 5 : -5;
      var end = isFinite(audio.duration) ? audio.duration : Infinity;
      seek(Math.min(end, audio.currentTime + d), false);
    }
  });

  if (audio) {
    audio.addEventListener("play", startTicking);
    audio.addEventListener("seeked", function () { setPermalink(audio.currentTime); update(); });
    audio.addEventListener("pause", function () { setPermalink(audio.currentTime); update(); });
    audio.addEventListener("timeupdate", update);
    window.addEventListener("hashchange", function () {
      var t = hashTime();
      if (t !== null && Math.abs(t - audio.currentTime) >= 1) seek(t, true);
    });
    var start = hashTime();
    if (start !== null) {
      var go = function () {
        audio.currentTime = start;
        update();
        var p = audio.play();  // may be refused without a user gesture: then it waits there
        if (p && p.catch) p.catch(function () {});
      };
      if (audio.readyState >= 1) { go(); } else { audio.addEventListener("loadedmetadata", go, { once: true }); }
      if (audio.preload === "none") audio.load();
    }
  }

  // find in the transcript: matching sentences are marked, Enter goes to the next one
  if (findBox) {
    var hits = [], at = -1, timer = null;
    var runFind = function () {
      hits.forEach(function (s) { s.classList.remove("hit"); });
      hits = []; at = -1;
      var q = findBox.value.trim().toLowerCase();
      if (q) {
        hits = sentences.filter(function (s) { return s.textContent.toLowerCase().indexOf(q) >= 0; });
        hits.forEach(function (s) { s.classList.add("hit"); });
      }
      findCount.textContent = q ? hits.length + (hits.length === 1 ? " match" : " matches") : "";
    };
    findBox.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(runFind, 120); });
    findBox.addEventListener("keydown", function (event) {
      if (event.key === "Enter") {
        event.preventDefault();
        clearTimeout(timer); runFind();
        if (!hits.length) return;
        at = (at + 1) % hits.length;
        userScrolledAt = -Infinity;
        hits[at].scrollIntoView({ block: "center" });
        findCount.textContent = (at + 1) + " of " + hits.length;
      } else if (event.key === "Escape") {
        findBox.value = ""; runFind(); findBox.blur();
      }
    });
  }

  // interactive: tests wait for the flag, bench/viewer.py reads the mark's time
  if (window.performance && performance.mark) performance.mark("episode-ready");
  document.documentElement.dataset.episodeReady = "1";
})();

// "/" focuses the page's search box (the element marked data-slash-focus), as on
// most sites; on a page without one it opens the search page. Typing "/" into a
// field, or with a modifier held, is left alone.
(function () {
  "use strict";
  function typing(target) {
    if (!target || !target.tagName) return false;
    var tag = target.tagName.toLowerCase();
    return tag === "input" || tag === "textarea" || tag === "select" || target.isContentEditable;
  }
  document.addEventListener("keydown", function (event) {
    if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey) return;
    if (typing(event.target)) return;
    var box = document.querySelector("[data-slash-focus]");
    event.preventDefault();
    if (box) {
      box.focus();
      if (typeof box.select === "function") box.select();
    } else {
      window.location.assign("/view/search");
    }
  });
})();

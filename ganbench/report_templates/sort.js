// Click a header to sort its column; numbers sort numerically (from data-sort), empty cells last.
(function () {
  function key(cell) {
    var raw = cell.getAttribute("data-sort");
    if (raw === null || raw === "") { return null; }
    var num = Number(raw);
    return isNaN(num) ? raw : num;
  }
  function sortBy(table, index, th) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var asc = !th.classList.contains("sorted-asc");
    rows.sort(function (a, b) {
      var x = key(a.cells[index]), y = key(b.cells[index]);
      if (x === null) { return y === null ? 0 : 1; }
      if (y === null) { return -1; }
      var c = (typeof x === "number" && typeof y === "number") ? x - y : String(x).localeCompare(String(y));
      return asc ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) {
      h.classList.remove("sorted-asc", "sorted-desc");
    });
    th.classList.add(asc ? "sorted-asc" : "sorted-desc");
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, index) {
      th.addEventListener("click", function () { sortBy(table, index, th); });
    });
    table.setAttribute("data-sortable", "ready");
  });
  // Deep link: leaderboard.html#sort=3 sorts the leaderboard by its fourth column (#sort=3-desc: descending).
  var board = document.querySelector("table.leaderboard");
  var m = /^#sort=(\d+)(-desc)?$/.exec(window.location.hash);
  var th = board && m && board.tHead.rows[0].cells[Number(m[1])];
  if (th) {
    sortBy(board, Number(m[1]), th);
    if (m[2]) { sortBy(board, Number(m[1]), th); }
  }
})();

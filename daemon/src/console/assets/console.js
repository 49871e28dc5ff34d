// statflow console: small enhancements; every page works without them.

// The calendar import form: a chosen file is read into the form (the notice can also be
// pasted).
(function () {
  var input = document.getElementById("notice-file");
  if (!input) { return; }
  input.addEventListener("change", function (event) {
    var file = event.target.files[0];
    if (!file) { return; }
    document.getElementById("origin").value = file.name;
    file.text().then(function (text) { document.getElementById("content").value = text; });
  });
})();

// The definition upload form: likewise.
(function () {
  var input = document.getElementById("definition-file");
  if (!input) { return; }
  input.addEventListener("change", function (event) {
    var file = event.target.files[0];
    if (!file) { return; }
    document.getElementById("file").value = file.name;
    file.text().then(function (text) { document.getElementById("source").value = text; });
  });
})();

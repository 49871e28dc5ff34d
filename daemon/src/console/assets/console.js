// statflow console: small enhancements; every page works without them.

// A file chosen in an upload form is read into the form: its name into `nameId`, its text
// into `contentId` (the text can also be pasted).
function fillFromFile(inputId, nameId, contentId) {
  var input = document.getElementById(inputId);
  if (!input) { return; }
  input.addEventListener("change", function (event) {
    var file = event.target.files[0];
    if (!file) { return; }
    document.getElementById(nameId).value = file.name;
    file.text().then(function (text) { document.getElementById(contentId).value = text; });
  });
}

fillFromFile("notice-file", "origin", "content");
fillFromFile("definition-file", "file", "source");

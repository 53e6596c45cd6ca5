// Loaded before Redoc's bundle on PGI's Redoc page. Redoc's sidebar shows its vendor's logo from a
// CDN; PGI's pages load nothing from other hosts, and the Content-Security-Policy would block (and
// report) that request. Point it at an empty image instead: it fails to decode and Redoc hides it.
"use strict";
(function () {
  const setAttribute = Element.prototype.setAttribute;
  Element.prototype.setAttribute = function (name, value) {
    if (this.tagName === "IMG" && name === "src" && String(value).startsWith("https://cdn.redoc.ly/")) {
      value = "data:,";
    }
    return setAttribute.call(this, name, value);
  };
})();

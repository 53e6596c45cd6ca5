// Loaded before Redoc's bundle on PGI's Redoc page. Redoc's sidebar shows its vendor's logo from a
// CDN; PGI's pages load nothing from other hosts, and the Content-Security-Policy would block (and
// report) that request. Point it at an empty image instead: it fails to decode and Redoc hides it.
"use strict";
(function () {
  const VENDOR_CDN = "https://cdn.redoc.ly/";
  const EMPTY = "data:,";
  const offline = (value) => (String(value).startsWith(VENDOR_CDN) ? EMPTY : value);

  const setAttribute = Element.prototype.setAttribute;
  Element.prototype.setAttribute = function (name, value) {
    return setAttribute.call(this, name, this instanceof HTMLImageElement && name === "src" ? offline(value) : value);
  };
  const src = Object.getOwnPropertyDescriptor(HTMLImageElement.prototype, "src");
  Object.defineProperty(HTMLImageElement.prototype, "src", {
    ...src,
    set(value) {
      src.set.call(this, offline(value));
    },
  });
})();

// Renders the CodeExec API description (/api/openapi.json) with Swagger UI. A file of its
// own, not an inline script, so that the page works under a content security policy that
// allows scripts from this origin only.
window.addEventListener("DOMContentLoaded", function () {
  window.ui = SwaggerUIBundle({
    url: "/api/openapi.json",
    dom_id: "#api-docs",
    deepLinking: true,
    tryItOutEnabled: false,
    validatorUrl: null,
  });
});

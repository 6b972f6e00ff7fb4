/* clawbeat API docs: starts Swagger UI (served by the monitor itself, no CDN).
 * A file rather than an inline script: the pages' Content-Security-Policy allows only
 * the monitor's own scripts. */
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const ui = SwaggerUIBundle({
    url: "/api/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    // The default validator is a third-party image the CSP blocks (and offline hosts lack).
    validatorUrl: null,
    // The token stays in this page's memory, as the dashboard keeps it in localStorage only.
    persistAuthorization: false,
    tryItOutEnabled: false,
    onComplete: () => {
      // Signed in on the dashboard: "Try it out" uses the same token.
      const token = localStorage.getItem("clawbeat.token");
      if (token) ui.preauthorizeApiKey("bearer", token);
    },
  });
});

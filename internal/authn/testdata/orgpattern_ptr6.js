// Generates orgpattern_ptr6.json (npm pack path-to-regexp@6.3.0; tar xzf it here): what
// path-to-regexp 6.3.0's match() (Clerk's default options) gives for each
// pattern list and path.
const { match } = require('./package/dist/index.js');
const lists = [
  ["/orgs/:slug", "/orgs/:slug/(.*)"],
  ["/o/:id/(.*)", "/both/:slug/:id"],
  ["/me", "/me/(.*)"],
  ["/t/:slug/(.*)", "/t/:id/x"],
  ["/orgs/:slug/settings", "/a/:slug.json", "/b/:id-x/(.*)"],
  ["/"],
];
const paths = ["/", "/orgs", "/orgs/", "/orgs/acme", "/orgs/acme/", "/orgs/acme//", "/orgs/acme/settings",
  "/orgs/acme/settings/", "/ORGS/Acme/x", "/orgsx/acme", "/x/orgs/acme", "/orgs/a%2Fb/x", "/orgs/acme;beta/x",
  "/orgs/../x", "/orgs/acme/../beta", "/orgs//beta", "/o/org_123/x", "/o/org_123", "/o/org_123/", "/both/acme/org_9",
  "/both/acme/org_9/", "/me", "/me/", "/me/profile", "/mex", "/ME", "/t/acme/x", "/a/acme.json", "/a/acme.json/",
  "/a/ac.me.json", "/b/org_1-x/", "/b/org_1-x/y", "/b/org-1-x/y", "/orgs/%E2%82%AC/", "/orgs/acme/%2e%2e/beta",
  "/orgs/ac me/", "/orgs/acme/SETTINGS"];
const out = [];
for (const patterns of lists) {
  const m = match(patterns, { decode: (x) => x });
  for (const path of paths) {
    const r = m(path);
    out.push({ patterns, path, match: r !== false, params: r ? r.params : null });
  }
}
console.log(JSON.stringify(out, null, 1));

// The test site's tiny single-page app: routes change with history.pushState / replaceState
// and the title follows the route, as in a real SPA. Every page of every client uses it.
(function () {
  var titles = { '': 'Home', pricing: 'Pricing', second: 'Second page' };
  function titleFor(pathname) {
    var route = pathname.split('/')[2] || '';
    var base = titles[route] || route;
    return location.search.indexOf('plan=') >= 0 ? base + ' - Pro' : base;
  }
  function render() {
    document.title = titleFor(location.pathname);
    var heading = document.getElementById('heading');
    if (heading) heading.textContent = document.title;
  }
  // Pages live under /<client>/; routes are relative to that.
  function url(route) { return '/' + location.pathname.split('/')[1] + '/' + route; }
  window.spa = {
    // Like a router: change the URL, then render (title first, as frameworks do on commit).
    go: function (route) { history.pushState({}, '', url(route)); render(); },
    replace: function (route) { history.replaceState({}, '', url(route)); render(); },
  };
  window.addEventListener('popstate', render);
  document.title = titleFor(location.pathname);
  document.addEventListener('DOMContentLoaded', render);
})();

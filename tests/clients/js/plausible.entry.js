// Plausible's official npm tracker, bundled for a plain <script> tag in the test site.
import { init, track } from '@plausible-analytics/tracker';

window.PlausibleTracker = { init, track };

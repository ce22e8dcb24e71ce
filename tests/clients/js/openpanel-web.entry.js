// The official OpenPanel web SDK from npm, bundled for a plain <script> tag in the test site.
import { OpenPanel } from '@openpanel/web';

window.OpenPanelWeb = OpenPanel;

// Write templates/harmonix-environment.yaml from the Harmonix spec schema.
import { writeFileSync } from 'node:fs';

import { templateYaml } from '../src/template.mjs';

const url = new URL('../templates/harmonix-environment.yaml', import.meta.url);
writeFileSync(url, templateYaml());
console.log(`wrote ${url.pathname}`);

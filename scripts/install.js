// npm's install step: builds the best native addon this machine allows (dist/lib/build/install-hook.js).
// A source checkout has no dist/ yet at `npm ci`; there scripts/setup.sh builds the addon instead.
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const hook = path.join(root, 'dist', 'lib', 'build', 'install-hook.js');

if (fs.existsSync(path.join(root, 'lib', 'index.ts'))) {
  console.log(
    'sdvp: source checkout, so the install step builds nothing: bash scripts/setup.sh builds everything',
  );
} else if (!fs.existsSync(hook)) {
  console.error(`sdvp: ${hook} is missing from the package, so no addon was built`);
} else {
  require(hook)
    .runInstallHook()
    .then(
      (code) => {
        process.exitCode = code;
      },
      (error) => {
        console.error(`sdvp: the addon build did not run: ${error?.stack ?? error}`);
      },
    );
}

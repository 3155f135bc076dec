// The shell commands sdvp's messages name as fixes. Each works from a project that depends on sdvp
// (`npx sdvp …` runs the installed package's CLI) as well as from a source checkout.

/** Rebuilds the addon inside the installed package with everything the machine offers. */
export const REBUILD = 'npx sdvp build';

/** Debian/Ubuntu packages of each build part, installed with apt-get as root. */
export const DEBIAN_PACKAGES = {
  compiler: 'g++ make',
  cmake: 'cmake',
  highway: 'libhwy-dev',
  libtorch: 'libtorch-dev',
} as const;

export function aptInstall(packages: string): string {
  return `apt-get install -y ${packages}`;
}

export const FIX = {
  /** The addon is missing or does not load. */
  rebuild: REBUILD,
  /** The addon lacks the LibTorch runtime. */
  addTorch: `${aptInstall(DEBIAN_PACKAGES.libtorch)} && ${REBUILD} --torch on`,
  /** LibTorch is installed somewhere CMake does not search (e.g. PyTorch's wheel). */
  torchPrefix: (prefix: string) => `${REBUILD} --torch on --torch-prefix ${shellQuote(prefix)}`,
  /** The addon lacks the CUDA kernels (after installing the CUDA toolkit). */
  addCuda: `${REBUILD} --cuda on`,
  compiler: `${aptInstall(DEBIAN_PACKAGES.compiler)} && ${REBUILD}`,
  cmake: `${aptInstall(DEBIAN_PACKAGES.cmake)} && ${REBUILD}`,
  highway: `${aptInstall(DEBIAN_PACKAGES.highway)} && ${REBUILD}`,
  /** Everything the full build needs on Debian, then the build. */
  everything: `${aptInstall(`${DEBIAN_PACKAGES.compiler} ${DEBIAN_PACKAGES.cmake} ${DEBIAN_PACKAGES.highway} ${DEBIAN_PACKAGES.libtorch}`)} && ${REBUILD}`,
} as const;

/** Quotes a path for a POSIX shell when it holds anything beyond plain path characters. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

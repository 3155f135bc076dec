// Small probes of the machine used by the toolchain report: finding an executable on PATH, reading a
// tool's version, and finding a CMake package config the way find_package's search paths do.

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The first executable called `name` on PATH (or the path itself when `name` has a slash). */
export function findExecutable(name: string, env: NodeJS.ProcessEnv = process.env): string | null {
  if (name.includes('/')) return isExecutable(name) ? path.resolve(name) : null;
  for (const dir of (env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    if (isExecutable(candidate)) return candidate;
  }
  return null;
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

/** Runs `command args` briefly and returns the first capture of `pattern` in its output, or null. */
export function readVersion(command: string, args: string[], pattern: RegExp): string | null {
  const result = spawnSync(command, args, { encoding: 'utf8', timeout: 15_000, stdio: ['ignore', 'pipe', 'pipe'] });
  if (result.error) return null;
  const match = pattern.exec(`${result.stdout ?? ''}\n${result.stderr ?? ''}`);
  return match ? (match[1] ?? match[0]).trim() : null;
}

/** Parses `set(PACKAGE_VERSION "1.13.0")` out of a CMake <Package>ConfigVersion.cmake file. */
export function parsePackageVersion(text: string): string | null {
  const match = /set\(\s*PACKAGE_VERSION\s+"([^"$]+)"\s*\)/.exec(text);
  return match ? match[1] : null;
}

export interface CMakeConfigHit {
  /** The folder holding the config file (what CMake stores as <Package>_DIR). */
  dir: string;
  version: string | null;
}

/**
 * Finds `<Package>Config.cmake` / `<package>-config.cmake` below the given prefixes, in the folders
 * find_package searches on Unix: <prefix>, <prefix>/<Package>, <prefix>/(share|lib|lib64)/cmake/<Package>
 * and <prefix>/lib/<multiarch>/cmake/<Package>.
 */
export function findCMakeConfig(packageName: string, prefixes: string[]): CMakeConfigHit | null {
  const configNames = [`${packageName}Config.cmake`, `${packageName.toLowerCase()}-config.cmake`];
  const versionNames = [`${packageName}ConfigVersion.cmake`, `${packageName.toLowerCase()}-config-version.cmake`];
  for (const prefix of prefixes) {
    for (const dir of candidateDirs(prefix, packageName)) {
      if (!configNames.some((name) => fs.existsSync(path.join(dir, name)))) continue;
      let version: string | null = null;
      for (const name of versionNames) {
        const file = path.join(dir, name);
        if (fs.existsSync(file)) version = parsePackageVersion(fs.readFileSync(file, 'utf8'));
        if (version) break;
      }
      return { dir, version };
    }
  }
  return null;
}

function candidateDirs(prefix: string, packageName: string): string[] {
  const dirs = [prefix, path.join(prefix, packageName)];
  for (const base of ['share', 'lib', 'lib64']) dirs.push(path.join(prefix, base, 'cmake', packageName));
  const lib = path.join(prefix, 'lib');
  try {
    for (const entry of fs.readdirSync(lib, { withFileTypes: true })) {
      if (entry.isDirectory() && entry.name.includes('-linux-')) {
        dirs.push(path.join(lib, entry.name, 'cmake', packageName));
      }
    }
  } catch {
    // no lib folder under this prefix
  }
  return dirs;
}

/** The prefixes CMake searches by default on Unix, after CMAKE_PREFIX_PATH from the environment. */
export function defaultCMakePrefixes(env: NodeJS.ProcessEnv = process.env): string[] {
  const fromEnv = (env.CMAKE_PREFIX_PATH ?? '').split(path.delimiter).filter(Boolean);
  return [...fromEnv, '/usr/local', '/usr', '/opt/local'];
}

import { existsSync } from 'node:fs';

/**
 * The Python the binding's tests and benches run: Debian's python3 (its python3-redis is redis-py
 * 4.3, what .ci/run installs), else whatever `python3` the PATH finds.
 */
export const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

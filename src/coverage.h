/*
 * coverage - gcov's counts of a process that ends with _exit(): a forked
 * child (a worker, the ban helper) must not run its parent's exit
 * handlers, so gcov's own never runs there. coverage_dump() writes them in
 * the --coverage build of `make coverage` (-DBREAKWATER_COVERAGE) and is
 * nothing otherwise.
 */
#ifndef BREAKWATER_COVERAGE_H
#define BREAKWATER_COVERAGE_H

#ifdef BREAKWATER_COVERAGE
void __gcov_dump(void);
#define coverage_dump() __gcov_dump()
#else
#define coverage_dump() ((void)0)
#endif

#endif

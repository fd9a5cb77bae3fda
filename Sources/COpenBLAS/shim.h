#include <cblas.h>

// LAPACK routines exported by OpenBLAS (Debian ships no LAPACKE header).
void sgesdd_(const char *jobz, const int *m, const int *n, float *a, const int *lda,
             float *s, float *u, const int *ldu, float *vt, const int *ldvt,
             float *work, const int *lwork, int *iwork, int *info);

/*===- dtype.c - moert element types --------------------------------------===*/

#include "moert/dtype.h"

const char *moert_dtype_name(moert_dtype_t dtype) {
  switch (dtype) {
  case MOERT_DTYPE_F32:
    return "F32";
  case MOERT_DTYPE_F16:
    return "F16";
  case MOERT_DTYPE_BF16:
    return "BF16";
  case MOERT_DTYPE_I32:
    return "I32";
  case MOERT_DTYPE_I64:
    return "I64";
  case MOERT_DTYPE_F64:
    return "F64";
  case MOERT_DTYPE_I16:
    return "I16";
  case MOERT_DTYPE_I8:
    return "I8";
  case MOERT_DTYPE_U64:
    return "U64";
  case MOERT_DTYPE_U32:
    return "U32";
  case MOERT_DTYPE_U16:
    return "U16";
  case MOERT_DTYPE_U8:
    return "U8";
  case MOERT_DTYPE_BOOL:
    return "BOOL";
  case MOERT_DTYPE_F8_E4M3:
    return "F8_E4M3";
  case MOERT_DTYPE_F8_E5M2:
    return "F8_E5M2";
  }
  return "UNKNOWN";
}

size_t moert_dtype_size(moert_dtype_t dtype) {
  switch (dtype) {
  case MOERT_DTYPE_F64:
  case MOERT_DTYPE_I64:
  case MOERT_DTYPE_U64:
    return 8;
  case MOERT_DTYPE_F32:
  case MOERT_DTYPE_I32:
  case MOERT_DTYPE_U32:
    return 4;
  case MOERT_DTYPE_F16:
  case MOERT_DTYPE_BF16:
  case MOERT_DTYPE_I16:
  case MOERT_DTYPE_U16:
    return 2;
  case MOERT_DTYPE_I8:
  case MOERT_DTYPE_U8:
  case MOERT_DTYPE_BOOL:
  case MOERT_DTYPE_F8_E4M3:
  case MOERT_DTYPE_F8_E5M2:
    return 1;
  }
  return 0;
}

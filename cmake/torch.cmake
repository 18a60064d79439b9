# cmake/torch.cmake — finds the optional libtorch for evalhost's torch and
# native backends (included by CMakeLists.txt; tests/e2e/test_one_torch.py
# includes it in a scratch project). In: EVALHOST_TORCH (AUTO/ON/OFF),
# EVALHOST_PYTHON. Out: EH_HAVE_TORCH, TORCH_LIBRARIES, CMAKE_INSTALL_RPATH.
#
# One Torch: the one EVALHOST_PYTHON imports (its torch.utils.cmake_prefix_path;
# any version, CPU or CUDA), else a Torch_DIR given by hand. TorchConfig's
# find_library calls search the system before its own lib/, so beside Debian's
# libtorch-dev they would take /usr/lib/<arch>/libc10.so next to the venv's
# libtorch, and every binary would abort at start (two c10s, "INTERNAL ASSERT
# FAILED ... DispatchKeySet.cpp"). Its find_package(Caffe2 PATHS ...) likewise
# searches the system first, and Debian's Caffe2Targets.cmake then defines the
# imported targets torch, torch_cpu and c10 at /usr/lib/<arch>/lib*.so.1.13.
# So Caffe2_DIR is pinned beside Torch_DIR, each library of that Torch's lib/
# is found there alone first (a cached path into another Torch is dropped),
# and a c10 or torch library or imported target from anywhere else is an
# error at configure time.
set(EH_HAVE_TORCH OFF)
if(NOT EVALHOST_TORCH STREQUAL "OFF")
  if(EXISTS "${EVALHOST_PYTHON}")
    execute_process(COMMAND "${EVALHOST_PYTHON}" -c "import torch.utils; print(torch.utils.cmake_prefix_path)"
                    OUTPUT_VARIABLE EH_TORCH_PREFIX OUTPUT_STRIP_TRAILING_WHITESPACE
                    RESULT_VARIABLE EH_TORCH_RC ERROR_QUIET)
    if(EH_TORCH_RC EQUAL 0 AND EXISTS "${EH_TORCH_PREFIX}/Torch/TorchConfig.cmake")
      set(Torch_DIR "${EH_TORCH_PREFIX}/Torch" CACHE PATH "Torch's CMake package (from EVALHOST_PYTHON)" FORCE)
    endif()
  endif()
  if(Torch_DIR AND EXISTS "${Torch_DIR}/../Caffe2/Caffe2Config.cmake")
    get_filename_component(EH_CAFFE2_DIR "${Torch_DIR}/../Caffe2" ABSOLUTE)
    if(NOT Caffe2_DIR STREQUAL EH_CAFFE2_DIR)
      set(Caffe2_DIR "${EH_CAFFE2_DIR}" CACHE PATH "Caffe2's CMake package, beside Torch_DIR" FORCE)
    endif()
  endif()
  if(Torch_DIR AND EXISTS "${Torch_DIR}/TorchConfig.cmake")
    get_filename_component(EH_TORCH_ROOT "${Torch_DIR}/../../.." ABSOLUTE)
    file(GLOB EH_TORCH_LIBS "${EH_TORCH_ROOT}/lib/lib*.so" "${EH_TORCH_ROOT}/lib/lib*.a")
    foreach(lib ${EH_TORCH_LIBS})
      get_filename_component(name "${lib}" NAME_WE)
      string(REGEX REPLACE "^lib" "" name "${name}")
      set(vars ${name}_LIBRARY)
      # the variables TorchConfig.cmake spells otherwise
      if(name STREQUAL "torch")
        list(APPEND vars TORCH_LIBRARY)
      elseif(name STREQUAL "c10_cuda")
        list(APPEND vars C10_CUDA_LIBRARY)
      elseif(name STREQUAL "caffe2_nvrtc")
        list(APPEND vars CAFFE2_NVRTC_LIBRARY)
      endif()
      foreach(var ${vars})
        string(FIND "${${var}}" "${EH_TORCH_ROOT}/lib/" at)
        if(NOT at EQUAL 0)
          unset(${var} CACHE)
        endif()
        find_library(${var} ${name} PATHS "${EH_TORCH_ROOT}/lib" NO_DEFAULT_PATH)
      endforeach()
    endforeach()
  endif()
  find_package(Torch QUIET)
  if(Torch_FOUND)
    # imported targets stand for their files: check those files too
    set(EH_TORCH_FILES ${TORCH_LIBRARY} ${c10_LIBRARY})
    foreach(lib ${TORCH_LIBRARIES} torch torch_cpu torch_cuda c10 c10_cuda)
      if(TARGET ${lib})
        get_target_property(configs ${lib} IMPORTED_CONFIGURATIONS)
        set(props IMPORTED_LOCATION)
        foreach(config ${configs})
          list(APPEND props IMPORTED_LOCATION_${config})
        endforeach()
        foreach(prop ${props})
          get_target_property(loc ${lib} ${prop})
          if(loc)
            list(APPEND EH_TORCH_FILES "${loc}")
          endif()
        endforeach()
      else()
        list(APPEND EH_TORCH_FILES "${lib}")
      endif()
    endforeach()
    foreach(lib ${EH_TORCH_FILES})
      get_filename_component(name "${lib}" NAME)
      string(FIND "${lib}" "${TORCH_INSTALL_PREFIX}/" at)
      if(IS_ABSOLUTE "${lib}" AND name MATCHES "^lib(c10|torch|caffe2)" AND NOT at EQUAL 0)
        message(FATAL_ERROR "evalhost: ${lib} is not from the Torch at ${TORCH_INSTALL_PREFIX}: two Torch "
                "installations would be linked together; remove ${name}'s cache entry (and Caffe2_DIR's) or set Torch_DIR")
      endif()
    endforeach()
    set(EH_HAVE_TORCH ON)
    # the installed binary finds this libtorch without LD_LIBRARY_PATH
    list(APPEND CMAKE_INSTALL_RPATH "${TORCH_INSTALL_PREFIX}/lib")
    message(STATUS "evalhost: building the torch backend against ${TORCH_INSTALL_PREFIX}")
  elseif(EVALHOST_TORCH STREQUAL "ON")
    message(FATAL_ERROR "EVALHOST_TORCH=ON but Torch was not found (run `make deps`)")
  else()
    message(STATUS "evalhost: Torch not found; building without the torch backend")
  endif()
endif()

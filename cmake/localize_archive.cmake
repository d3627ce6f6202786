# cmake/localize_archive.cmake — run at install time (cmake --install): folds the installed
# libqinx.a into one relocatable object (ld -r) whose internal qx__ symbols are made local
# (objcopy --localize-symbol qx__*), so that the archive a user links exports the same names as
# libqinx.so: qx_ and the FAISS binding's faiss_, none of the library's internal qx__ calls.
# The build tree's libqinx.a is left as it is (white-box tests link the internals).
# In: QX_ARCHIVE (installed archive), QX_LD, QX_OBJCOPY, QX_AR.
set(obj "${QX_ARCHIVE}.o")
execute_process(COMMAND "${QX_LD}" -r -o "${obj}" --whole-archive "${QX_ARCHIVE}" RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "localize_archive: ld -r ${QX_ARCHIVE} failed (${rc})")
endif()
execute_process(COMMAND "${QX_OBJCOPY}" --wildcard "--localize-symbol=qx__*" "${obj}" RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "localize_archive: objcopy --localize-symbol=qx__* ${obj} failed (${rc})")
endif()
file(REMOVE "${QX_ARCHIVE}")
get_filename_component(dir "${QX_ARCHIVE}" DIRECTORY)
file(RENAME "${obj}" "${dir}/qinx.o")
execute_process(COMMAND "${QX_AR}" rcs "${QX_ARCHIVE}" qinx.o WORKING_DIRECTORY "${dir}" RESULT_VARIABLE rc)
file(REMOVE "${dir}/qinx.o")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "localize_archive: ar rcs ${QX_ARCHIVE} failed (${rc})")
endif()

# Man pages (help2man) and bash completion, generated from the built command's
# --help by packaging/gen_docs.sh whenever the command is relinked: a new
# subcommand gets its page and its completion without anyone listing it.
find_program(PAGEWIRE_HELP2MAN help2man)
if(NOT PAGEWIRE_HELP2MAN)
    message(WARNING "help2man not found: building without man pages, so `make deb` will refuse "
                    "(Debian package help2man; scripts/install-deps.sh installs it)")
endif()
set(PAGEWIRE_DOCS_DIR ${PROJECT_BINARY_DIR}/docs)
# `pagewire bench --help` is pagewire-bench's help (the command execs it), so
# the bench page needs that program built first.
set(_pagewire_docs_needs pagewire_cli)
if(TARGET pagewire_bench)
    list(APPEND _pagewire_docs_needs pagewire_bench)
endif()
add_custom_command(OUTPUT ${PAGEWIRE_DOCS_DIR}/stamp
    COMMAND bash ${PROJECT_SOURCE_DIR}/packaging/gen_docs.sh $<TARGET_FILE:pagewire_cli>
            ${PROJECT_VERSION} ${PAGEWIRE_DOCS_DIR} ${PAGEWIRE_HELP2MAN}
    COMMAND ${CMAKE_COMMAND} -E touch ${PAGEWIRE_DOCS_DIR}/stamp
    DEPENDS ${_pagewire_docs_needs} ${PROJECT_SOURCE_DIR}/packaging/gen_docs.sh
    COMMENT "Generating man pages and bash completion from pagewire --help"
    VERBATIM)
add_custom_target(pagewire_docs ALL DEPENDS ${PAGEWIRE_DOCS_DIR}/stamp)

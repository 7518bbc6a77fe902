# The group coordinator's sources (kafka/groups.hpp): the state machine, then
# one file per family of APIs.
list(APPEND PAGEWIRE_KAFKA_SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/groups.cpp
    ${CMAKE_CURRENT_LIST_DIR}/group_membership.cpp
    ${CMAKE_CURRENT_LIST_DIR}/group_offsets.cpp
    ${CMAKE_CURRENT_LIST_DIR}/group_lookup.cpp)

# The broker's part of the Kafka module: sessions, topics and one handler
# per API (see src/kafka/CMakeLists.txt).
list(APPEND PAGEWIRE_KAFKA_SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/api_versions.cpp
    ${CMAKE_CURRENT_LIST_DIR}/broker.cpp
    ${CMAKE_CURRENT_LIST_DIR}/create_topics.cpp
    ${CMAKE_CURRENT_LIST_DIR}/delete_topics.cpp
    ${CMAKE_CURRENT_LIST_DIR}/fetch.cpp
    ${CMAKE_CURRENT_LIST_DIR}/init_producer_id.cpp
    ${CMAKE_CURRENT_LIST_DIR}/list_offsets.cpp
    ${CMAKE_CURRENT_LIST_DIR}/metadata.cpp
    ${CMAKE_CURRENT_LIST_DIR}/produce.cpp
    ${CMAKE_CURRENT_LIST_DIR}/session.cpp
    ${CMAKE_CURRENT_LIST_DIR}/topic_admin.cpp
    ${CMAKE_CURRENT_LIST_DIR}/topic_client.cpp
    ${CMAKE_CURRENT_LIST_DIR}/topics.cpp
)
# Topic meta files are JSON; linked once the library exists (end of this directory).
find_package(nlohmann_json REQUIRED)
cmake_language(DEFER CALL target_link_libraries pagewire_kafka PRIVATE nlohmann_json::nlohmann_json)

# Debian package (`make package`): install rules for the config file, the systemd unit
# and the docs, and the CPack DEB settings. The binary's own rule is in proxy/.
#
# Built with -DCMAKE_INSTALL_PREFIX=/usr (as `make package` does), the package holds
#   /usr/bin/sluice
#   /etc/sluice/sluice.yaml              (a conffile: local edits survive upgrades)
#   /lib/systemd/system/sluice.service   (Debian 12 still ships units under /lib)
#   /usr/share/doc/sluice/README.md
# and its Depends come from dpkg-shlibdeps (package dpkg-dev), plus adduser (postinst)
# and procps (/bin/kill for ExecReload).

set(SLUICE_PACKAGING_DIR ${PROJECT_SOURCE_DIR}/packaging)

# Absolute destinations: /etc and the unit directory do not move with the prefix.
install(FILES ${PROJECT_SOURCE_DIR}/conf/sluice.yaml DESTINATION /etc/sluice)
install(FILES ${SLUICE_PACKAGING_DIR}/sluice.service DESTINATION /lib/systemd/system)
install(FILES ${PROJECT_SOURCE_DIR}/README.md DESTINATION share/doc/sluice)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME sluice)
set(CPACK_PACKAGE_VENDOR "sluice")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "packet-aware MySQL/MariaDB proxy")
set(CPACK_PACKAGE_DESCRIPTION
    "sluice sits between applications and MySQL/MariaDB and forwards whole protocol\n"
    "packets: oversized packets are refused with the configured MySQL error before\n"
    "they are buffered, stalled and idle peers are cut off on mysqld-style timeouts,\n"
    "and every packet, command, timeout and rejection is exported to Prometheus.")
list(JOIN CPACK_PACKAGE_DESCRIPTION "" CPACK_PACKAGE_DESCRIPTION)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_PACKAGE_CHECKSUM SHA256)

set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # sluice_<version>-<release>_<arch>.deb
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "sluice maintainers <maintainers@sluice.invalid>"
    CACHE STRING "Maintainer field of the Debian package")
set(CPACK_DEBIAN_PACKAGE_SECTION database)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# Depends on the shared libraries the binary links, as dpkg-shlibdeps finds them.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# adduser: postinst creates the system user; procps: /bin/kill in ExecReload.
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser, procps")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "mariadb-server | default-mysql-server, prometheus")
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS OFF)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${SLUICE_PACKAGING_DIR}/conffiles
    ${SLUICE_PACKAGING_DIR}/postinst
    ${SLUICE_PACKAGING_DIR}/prerm
    ${SLUICE_PACKAGING_DIR}/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

include(CPack)

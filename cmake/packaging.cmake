# Installing sluice as a daemon, and its Debian package (CPack). Included from CMakeLists.txt.
#
#   cmake -S . -B build-pkg -G Ninja -DCMAKE_BUILD_TYPE=Release -DSLUICE_BUILD_TESTS=OFF \
#     -DCMAKE_INSTALL_PREFIX=/usr
#   ninja -C build-pkg sluice && cmake --install build-pkg      # or: cd build-pkg && cpack -G DEB
#
# Installs <prefix>/bin/sluice, /etc/sluice/sluice.toml, the systemd unit sluice.service,
# /etc/logrotate.d/sluice and the docs. The config and the logrotate snippet go to /etc
# whatever the prefix (logrotate reads only /etc/logrotate.d). The unit is written at install
# time, so that its ExecStart names the prefix actually installed to (cpack's /usr, or
# `cmake --install --prefix ...`), not the one configured. scripts/check-package checks it all.
include(GNUInstallDirs)

set(SLUICE_CONFDIR "/etc/sluice" CACHE PATH
  "Where the default config sluice.toml is installed (absolute: /etc also for prefix /usr)")
set(SLUICE_LOGROTATEDIR "/etc/logrotate.d" CACHE PATH "Where the logrotate snippet goes")
set(SLUICE_SYSTEMD_UNITDIR "" CACHE PATH
  "Where sluice.service goes; empty: /lib/systemd/system for prefix /usr (Debian 12), else \
<prefix>/lib/systemd/system (systemd reads /usr/local/lib/systemd/system too)")
set(SLUICE_PACKAGE_MAINTAINER "sluice maintainers <sluice@localhost>" CACHE STRING
  "The Debian package's Maintainer field")

install(TARGETS sluice RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES packaging/sluice.toml DESTINATION ${SLUICE_CONFDIR})
install(FILES packaging/logrotate DESTINATION ${SLUICE_LOGROTATEDIR} RENAME sluice)
install(FILES README.md docs/INSTALL.md docs/REFERENCE.md docs/ARCHITECTURE.md
  docs/MONITORING.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(DIRECTORY configs/ DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples FILES_MATCHING
  PATTERN "*.toml")

# The unit, from packaging/sluice.service.in with the install-time prefix.
set(sluice_unit_code [=[
  set(sluice_prefix "${CMAKE_INSTALL_PREFIX}")
  set(BINDIR "@CMAKE_INSTALL_BINDIR@")
  set(DOCDIR "@CMAKE_INSTALL_DOCDIR@")
  foreach(dir BINDIR DOCDIR)
    if(NOT IS_ABSOLUTE "${${dir}}")
      set(${dir} "${sluice_prefix}/${${dir}}")
    endif()
  endforeach()
  set(CONFDIR "@SLUICE_CONFDIR@")
  set(sluice_unitdir "@SLUICE_SYSTEMD_UNITDIR@")
  if(sluice_unitdir STREQUAL "")
    if(sluice_prefix STREQUAL "/usr")
      set(sluice_unitdir "/lib/systemd/system")
    else()
      set(sluice_unitdir "${sluice_prefix}/lib/systemd/system")
    endif()
  elseif(NOT IS_ABSOLUTE "${sluice_unitdir}")
    set(sluice_unitdir "${sluice_prefix}/${sluice_unitdir}")
  endif()
  configure_file("@CMAKE_CURRENT_SOURCE_DIR@/packaging/sluice.service.in"
    "@CMAKE_CURRENT_BINARY_DIR@/packaging/sluice.service" @ONLY)
  file(INSTALL DESTINATION "${sluice_unitdir}" TYPE FILE
    FILES "@CMAKE_CURRENT_BINARY_DIR@/packaging/sluice.service")
]=])
string(CONFIGURE "${sluice_unit_code}" sluice_unit_code @ONLY)
install(CODE "${sluice_unit_code}")

# The Debian package: cpack -G DEB in a Release build dir (dpkg-dev computes Depends).
file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/packaging/conffiles
  "${SLUICE_CONFDIR}/sluice.toml\n${SLUICE_LOGROTATEDIR}/sluice\n")
set(CPACK_PACKAGE_NAME sluice)
set(CPACK_PACKAGE_VENDOR "sluice")
set(CPACK_PACKAGE_CONTACT "${SLUICE_PACKAGE_MAINTAINER}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
  "log ingestion daemon with a bounded queue and backpressure")
string(JOIN "\n" CPACK_PACKAGE_DESCRIPTION
  "sluice takes logs over TCP, UDP (syslog) and ZeroMQ, decodes text, JSON lines and"
  "syslog, keeps them in one bounded queue and writes them to files, to SQLite and on over"
  "ZeroMQ. When a sink falls behind, the queue fills and sluice stops reading, so senders"
  "slow down instead of its memory growing."
  ""
  "This package installs the sluice.service systemd unit (not enabled on install:"
  "systemctl enable --now sluice), its config /etc/sluice/sluice.toml and a logrotate"
  "snippet for the file sink's files.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${SLUICE_PACKAGE_MAINTAINER}")
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS logrotate)
set(CPACK_DEBIAN_PACKAGE_SUGGESTS sqlite3)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  ${CMAKE_CURRENT_BINARY_DIR}/packaging/conffiles
  ${CMAKE_CURRENT_SOURCE_DIR}/packaging/debian/postinst
  ${CMAKE_CURRENT_SOURCE_DIR}/packaging/debian/prerm
  ${CMAKE_CURRENT_SOURCE_DIR}/packaging/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_GENERATOR DEB)
include(CPack)

# Show what this system VM runs when root logs in interactively.
case $- in
*i*)
    if [ "$(id -u)" = 0 ] && [ -x /opt/cloud/bin/systemvm-version ]; then
        /opt/cloud/bin/systemvm-version --motd
    fi
    ;;
esac
